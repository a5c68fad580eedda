/**
 * Client-side profile of the decider (issue 16): `node --cpu-prof --import tsx bench/decider/profile-client.ts`
 * runs the bench's uniform closed loop against a Redis of its own for `BENCH_DURATION_MS` and prints the client
 * CPU per decision; open the .cpuprofile it leaves (or `summarize-profile.ts`) to see where it goes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, startRedis, stopProcess } from '../../infra/services.js';
import { closedLoop } from './load.js';
import { tollgateOn } from './sides.js';
import { UNIFORM } from './workloads.js';

const port = await freePort();
const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-profile-'));
const redis = await startRedis({ dataDir, port, name: 'profile' });
const admin = new Redis({ port });
try {
  const side = await tollgateOn(port, UNIFORM);
  await closedLoop(admin, side.decideOnce); // warm up
  await admin.flushall();
  await admin.config('RESETSTAT');
  const result = await closedLoop(admin, side.decideOnce);
  const calls = Number(/^cmdstat_evalsha:calls=(\d+)/m.exec(await admin.info('commandstats'))?.[1] ?? 0);
  console.log(
    `${result.perSecond.toFixed(0)}/s, client CPU ${result.nodeCpuUsPerOp.toFixed(2)} µs/op, Redis CPU ${result.redisCpuUsPerOp.toFixed(2)} µs/op, ` +
      `${(result.count / Math.max(1, calls)).toFixed(1)} decisions per script call`,
  );
  side.client.disconnect();
} finally {
  admin.disconnect();
  await stopProcess(redis);
  rmSync(dataDir, { recursive: true, force: true });
}
