/**
 * The decider bench's contenders (bench/decider): tollgate's `RedisDecider`, rate-limiter-flexible, the
 * redis-benchmark ceiling, and Redis memory per tenant.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { RedisDecider, connectDeciderRedis, type DecideInput, type LimitSpec } from '../../src/decider/index.js';
import { compileRequest } from '../../src/decider/compile.js';
import type { ScriptSource } from '../../src/decider/decide-command.js';
import { systemClock } from '../../src/shared/index.js';
import { LIMITS, TENANTS, UNIFORM, decideInput, uniformIds, type Workload } from './workloads.js';

const execFileAsync = promisify(execFile);
export const SHARDS = 256;

/** redis-benchmark EVALSHA of the minimal token bucket `sha`, 50 clients: requests/s. */
export async function redisBenchmark(port: number, sha: string, pipeline: number): Promise<number> {
  const { stdout } = await execFileAsync(
    'redis-benchmark',
    [
      '-p',
      String(port),
      '-c',
      '50',
      '-n',
      '300000',
      '-P',
      String(pipeline),
      '-r',
      String(TENANTS),
      '--csv',
      'EVALSHA',
      sha,
      '1',
      'mtb:__rand_int__',
      '1000000',
      '1000',
      '3',
    ],
    { maxBuffer: 16 * 1024 * 1024 },
  );
  const line = stdout.trim().split('\n').at(-1) ?? '';
  return Number(line.split(',')[1]?.replaceAll('"', ''));
}

/**
 * A decider on its own connection, and a call that decides request i of `workload` (expected admitted). `decideScript`:
 * a prototype of decide.lua to call instead (callgrind.ts).
 */
export async function tollgateOn(port: number, workload: Workload, limits: LimitSpec[] = LIMITS, decideScript?: ScriptSource) {
  const client = await connectDeciderRedis({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 5_000 });
  const decider = new RedisDecider(client, {
    shardCount: SHARDS,
    clock: systemClock,
    ...(decideScript === undefined ? {} : { decideScript }),
  });
  const decideOnce = async (i: number): Promise<void> => {
    const decision = await decider.decide(decideInput(workload, i, limits));
    if (decision.kind !== 'allowed') throw new Error(`unexpected ${decision.kind}`);
  };
  return { client, decideOnce };
}

/** rate-limiter-flexible `consume` of the same tenants, 1 limit, no event. */
export async function rlfOn(port: number, workload: Workload) {
  const client = new Redis({ port, enableOfflineQueue: false });
  await new Promise((resolveReady) => client.once('ready', resolveReady));
  const limiter = new RateLimiterRedis({ storeClient: client, points: 1_000_000, duration: 1, keyPrefix: 'rlf' });
  return { client, consume: (i: number) => limiter.consume(workload.tenantAt(i), 3) };
}

/** Average MEMORY USAGE of what each sampled tenant of the uniform workload holds: its limit states and admitted counter, and its request records. */
export async function bytesPerTenant(admin: Redis): Promise<{ tenant: number; bucket: number; record: number; samples: number }> {
  let tenantBytes = 0;
  let bucketBytes = 0;
  let samples = 0;
  for (const tenant of uniformIds.slice(0, 1_000)) {
    const request = { ...decideInput(UNIFORM, 0), tenant: tenant as DecideInput['tenant'] };
    const { keys } = compileRequest(request, { shardCount: SHARDS, localNowMs: Date.now() });
    // admitted (current, next), then burst, minute, month (current, next): the ones that exist
    const sizes = await Promise.all(keys.slice(2).map((key) => admin.memory('USAGE', key)));
    const present = sizes.filter((size): size is number => typeof size === 'number');
    if (present.length === 0) continue;
    samples += 1;
    tenantBytes += present.reduce((sum, size) => sum + size, 0);
    bucketBytes += typeof sizes[2] === 'number' ? sizes[2] : 0;
  }
  const records = await admin.scan('0', 'MATCH', '{s:*}:t:*:r:v1:*', 'COUNT', 2_000);
  const recordSizes = (await Promise.all(records[1].slice(0, 500).map((key) => admin.memory('USAGE', key)))).filter(
    (size): size is number => typeof size === 'number',
  );
  const record = recordSizes.reduce((sum, size) => sum + size, 0) / Math.max(1, recordSizes.length);
  return { tenant: tenantBytes / Math.max(1, samples), bucket: bucketBytes / Math.max(1, samples), record, samples };
}
