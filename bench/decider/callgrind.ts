/**
 * Redis instructions per decision (issue 16), load-proof where CPU time on a shared machine is not:
 * `npx tsx bench/decider/callgrind.ts [requests] [uniform|zipf]` starts a Redis (AOF everysec, as the bench) under
 * valgrind's callgrind, collecting only inside `processInputBuffer` (commands, scripts, their propagation), warms it
 * with one batch, zeroes the counts, runs `requests` decisions of the bench's workload (3 limits, 256 in flight)
 * and prints the instructions per decision, and the Redis memory per tenant of its limit states and counters (every
 * key but request records, streams and markers, by MEMORY USAGE, over the tenants seen). `DECIDE_LUA=<file>` runs
 * another decide script in place of lua/decide.lua (a prototype layout). Needs valgrind; not part of `npm run bench`
 * (it takes a minute).
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from '../../infra/services.js';
import { scriptSource } from '../../src/decider/decide-command.js';
import { tollgateOn } from './sides.js';
import { LIMITS, UNIFORM, zipfWorkload } from './workloads.js';

const execFileAsync = promisify(execFile);

/** MEMORY USAGE of every limit state and counter key (not records, streams, markers), per tenant seen. */
async function tenantBytes(admin: Redis): Promise<string> {
  const tenants = new Set<string>();
  let bytes = 0;
  let keys = 0;
  let cursor = '0';
  do {
    const [next, batch] = await admin.scan(cursor, 'COUNT', 1_000);
    cursor = next;
    for (const key of batch) {
      const tenant = /:t:([^:]+)/.exec(key)?.[1];
      if (tenant === undefined || key.includes(':r:v1:')) continue;
      tenants.add(tenant);
      bytes += Number(await admin.memory('USAGE', key));
      keys += 1;
    }
  } while (cursor !== '0');
  return `${(bytes / Math.max(1, tenants.size)).toFixed(0)} B per tenant in ${(keys / Math.max(1, tenants.size)).toFixed(2)} keys (${tenants.size} tenants)`;
}
const requests = Number(process.argv[2] ?? 2_880);
const workload = process.argv[3] === 'zipf' ? zipfWorkload() : UNIFORM;
const port = await freePort();
const dir = mkdtempSync(join(tmpdir(), 'tollgate-callgrind-'));
const redis = spawn(
  'valgrind',
  [
    '--tool=callgrind',
    '--toggle-collect=processInputBuffer',
    `--callgrind-out-file=${join(dir, 'callgrind.out')}`,
    'redis-server',
    '--port',
    String(port),
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'yes',
    '--appendfsync',
    'everysec',
  ],
  { stdio: 'ignore' },
);
// queued until valgrind has started Redis (refused connections are retried every 200 ms)
const admin = new Redis({ port, retryStrategy: () => 200, maxRetriesPerRequest: null });
admin.on('error', () => undefined);
try {
  await admin.ping();
  const prototype = process.env['DECIDE_LUA'];
  const side = await tollgateOn(
    port,
    workload,
    LIMITS,
    prototype === undefined ? undefined : scriptSource(readFileSync(prototype, 'utf8')),
  );
  await Promise.all(Array.from({ length: 64 }, (_, i) => side.decideOnce(10_000_000 + i))); // loads the script
  await execFileAsync('callgrind_control', ['-z', String(redis.pid)]);
  let next = 0;
  await Promise.all(
    Array.from({ length: 256 }, async () => {
      while (next < requests) await side.decideOnce((next += 1));
    }),
  );
  await execFileAsync('callgrind_control', ['-d', String(redis.pid)]);
  const stats = await admin.info('commandstats');
  const calls = (name: string): number => Number(new RegExp(`^cmdstat_${name}:calls=(\\d+)`, 'm').exec(stats)?.[1] ?? 0);
  side.client.disconnect();
  const memory = await tenantBytes(admin);
  const dumps = readdirSync(dir).filter((name) => name.startsWith('callgrind.out') && name !== 'callgrind.out');
  let instructions = 0;
  for (const name of dumps) {
    const totals = /^totals:\s+(\d+)/m.exec(readFileSync(join(dir, name), 'utf8'))?.[1];
    instructions += Number(totals ?? 0);
  }
  console.log(
    `${workload.name}: ${requests} decisions, ${(instructions / requests / 1000).toFixed(1)}k instructions per decision; ` +
      `${(requests / Math.max(1, calls('evalsha') - 1)).toFixed(1)} decisions per call, ${calls('xadd')} XADD, ${calls('set')} SET, ` +
      `${calls('hset')} HSET, ${calls('pexpireat')} PEXPIREAT (since start); ${memory}`,
  );
} finally {
  admin.disconnect();
  redis.kill('SIGKILL');
  if (process.env['KEEP'] === undefined) rmSync(dir, { recursive: true, force: true });
  else console.log(dir);
}
