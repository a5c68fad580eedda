/**
 * A/B of two source trees' decider on one Redis (issue 16): `npx tsx bench/decider/ab.ts <treeRoot> <port> [uniform|zipf]`
 * imports `RedisDecider` from `<treeRoot>/src/decider` (another worktree, e.g. a commit before a layout change), runs
 * the bench's closed loop (3 limits, 256 in flight, `BENCH_DURATION_MS`) against the Redis already listening on
 * `port` (flushed before; the caller starts it once, so both trees run the same Redis build and config), and prints
 * one line: decisions/s, Redis CPU (INFO cpu) and EVALSHA time (INFO commandstats) per decision, client CPU per
 * decision, decisions per script call, and network bytes in/out per decision. Run the trees alternately.
 */
import { resolve } from 'node:path';
import { Redis } from 'ioredis';
import { closedLoop } from './load.js';
import { SHARDS } from './sides.js';
import { UNIFORM, decideInput, zipfWorkload } from './workloads.js';

interface DeciderModule {
  connectDeciderRedis: (options: { url: string; commandTimeoutMs: number }) => Promise<Redis>;
  RedisDecider: new (
    client: Redis,
    options: { shardCount: number; clock: unknown },
  ) => { decide: (input: unknown) => Promise<{ kind: string }> };
}

const root = resolve(process.argv[2] ?? '.');
const port = Number(process.argv[3]);
const workload = process.argv[4] === 'zipf' ? zipfWorkload() : UNIFORM;
const decider = (await import(`${root}/src/decider/index.ts`)) as DeciderModule;
const shared = (await import(`${root}/src/shared/index.ts`)) as { systemClock: unknown };

const admin = new Redis({ port });
const client = await decider.connectDeciderRedis({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 5_000 });
const tollgate = new decider.RedisDecider(client, { shardCount: SHARDS, clock: shared.systemClock });
const decideOnce = async (i: number): Promise<void> => {
  const decision = await tollgate.decide(decideInput(workload, i));
  if (decision.kind !== 'allowed') throw new Error(`unexpected ${decision.kind}`);
};
const stat = (info: string, name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
try {
  await admin.flushall();
  await Promise.all(Array.from({ length: 64 }, (_, i) => decideOnce(50_000_000 + i))); // loads the script
  await admin.config('RESETSTAT');
  const result = await closedLoop(admin, decideOnce);
  const info = (await admin.info('commandstats')) + (await admin.info('stats'));
  const evalsha = /^cmdstat_evalsha:calls=(\d+),usec=(\d+)/m.exec(info);
  const calls = Number(evalsha?.[1] ?? 0);
  const usec = Number(evalsha?.[2] ?? 0);
  const per = (value: number): string => (value / result.count).toFixed(1);
  console.log(
    `${root.split('/').at(-1)} ${workload.name}: ${result.perSecond.toFixed(0)}/s, Redis CPU ${result.redisCpuUsPerOp.toFixed(2)} µs, ` +
      `EVALSHA ${per(usec)} µs, client ${result.nodeCpuUsPerOp.toFixed(2)} µs per decision; ${(result.count / Math.max(1, calls)).toFixed(1)} per call; ` +
      `net in ${per(stat(info, 'total_net_input_bytes'))} B, out ${per(stat(info, 'total_net_output_bytes'))} B per decision`,
  );
} finally {
  client.disconnect();
  admin.disconnect();
}
