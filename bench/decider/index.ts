/**
 * The decider section of `npm run bench` (issue 16: the decider): one Node process, 256 decisions in flight,
 * tollgate `RedisDecider.decide` (3 limits + the usage event + the admitted counter; and 1 limit) vs
 * rate-limiter-flexible `RateLimiterRedis.consume` (1 limit, no event) on the same key sequence, uniform over
 * 100k tenants and Zipf (s = 1.1) over 1M tenants, vs `redis-benchmark` EVALSHA of a minimal token bucket (the
 * ceiling). Also p99 at half each maximum rate (open loop, `load.ts`), Redis CPU (INFO) and client CPU per decision,
 * where Redis time goes (INFO commandstats), Redis memory per tenant, and the cost of fsync-always and of WAIT for a
 * replica. Workloads in `workloads.ts`, contenders in `sides.ts`, the report in `report.ts`.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { REPO_ROOT, freePort, startRedis, stopProcess } from '../../infra/services.js';
import { RedisDecider } from '../../src/decider/index.js';
import { systemClock } from '../../src/shared/index.js';
import type { BenchContext, BenchSection } from '../run.js';
import { closedLoop, commandCosts, halfLoad, type LoadResult } from './load.js';
import { deciderReport, type DeciderMeasured, type WorkloadMeasured } from './report.js';
import { SHARDS, bytesPerTenant, redisBenchmark, rlfOn, tollgateOn } from './sides.js';
import { LIMITS, UNIFORM, decideInput, zipfWorkload, type Workload } from './workloads.js';

const ms = (value: number): string => value.toFixed(2);

/** One phase's result on the console as it ends (a later phase that fails leaves these). */
function progress(what: string, result: LoadResult): void {
  console.log(
    `  ${what}: ${result.perSecond.toFixed(0)}/s, Redis CPU ${result.redisCpuUsPerOp.toFixed(2)} µs/op, client CPU ${result.nodeCpuUsPerOp.toFixed(2)} µs/op`,
  );
}

/** Both libraries on one workload: each at its maximum (closed loop), then at half of it (open loop); Redis flushed between. */
async function measureWorkload(
  ctx: BenchContext,
  workload: Workload,
  afterTollgate?: (tollgate: LoadResult) => Promise<void>,
): Promise<WorkloadMeasured> {
  const { admin, redisPort: port } = ctx;
  const rlfSide = await rlfOn(port, workload);
  const rlf = await closedLoop(admin, rlfSide.consume);
  progress(`${workload.name} rate-limiter-flexible`, rlf);
  const rlfHalf = await halfLoad(admin, rlf.perSecond / 2, rlfSide.consume);
  rlfSide.client.disconnect();
  await admin.flushall();
  const side = await tollgateOn(port, workload);
  await admin.config('RESETSTAT');
  const tollgate = await closedLoop(admin, side.decideOnce);
  progress(`${workload.name} tollgate`, tollgate);
  await afterTollgate?.(tollgate);
  const tollgateHalf = await halfLoad(admin, tollgate.perSecond / 2, side.decideOnce);
  side.client.disconnect();
  await admin.flushall();
  console.log(
    `  ${workload.name} p99 at half rate, no AOF rewrite in the window: tollgate ${ms(tollgateHalf.quiet.p99Ms)} ms (p50 ${ms(tollgateHalf.quiet.p50Ms)}, generator lag ≤ ${ms(tollgateHalf.quiet.maxLagMs)}), rate-limiter-flexible ${ms(rlfHalf.quiet.p99Ms)} ms; ` +
      `as Redis runs: tollgate ${ms(tollgateHalf.asIs.p99Ms)} ms (${tollgateHalf.asIs.rewrites} rewrites), rate-limiter-flexible ${ms(rlfHalf.asIs.p99Ms)} ms (${rlfHalf.asIs.rewrites})`,
  );
  return { workload, tollgate, rlf, tollgateHalf, rlfHalf };
}

/** Tollgate with appendfsync always, then with WAIT for one replica (AOF everysec). */
async function measureDurability(port: number, admin: Redis): Promise<Pick<DeciderMeasured, 'always' | 'waited' | 'unacknowledged'>> {
  const side = await tollgateOn(port, UNIFORM);
  const client = side.client;
  await admin.config('SET', 'appendfsync', 'always');
  const always = await closedLoop(admin, side.decideOnce);
  await admin.config('SET', 'appendfsync', 'everysec');
  const replicaPort = await freePort();
  const replicaDir = mkdtempSync(join(tmpdir(), 'tollgate-bench-replica-'));
  const replicaProc = await startRedis({
    dataDir: replicaDir,
    port: replicaPort,
    name: 'replica',
    extraArgs: ['--replicaof', '127.0.0.1', String(port)],
  });
  const replicaAdmin = new Redis({ port: replicaPort });
  let unacknowledged = 0;
  try {
    while (!(await replicaAdmin.info('replication')).includes('master_link_status:up')) await new Promise((wait) => setTimeout(wait, 50));
    const waiting = new RedisDecider(client, { shardCount: SHARDS, clock: systemClock, waitForReplicas: { replicas: 1, timeoutMs: 50 } });
    const waited = await closedLoop(admin, async (i) => {
      const decision = await waiting.decide(decideInput(UNIFORM, i));
      if (decision.kind !== 'allowed') throw new Error(`unexpected ${decision.kind}`);
      // a WAIT that timed out (a loaded machine) still decided: counted, reported
      if (decision.replicasAcked !== 1) unacknowledged += 1;
    });
    return { always, waited, unacknowledged };
  } finally {
    replicaAdmin.disconnect();
    await stopProcess(replicaProc);
    rmSync(replicaDir, { recursive: true, force: true });
    client.disconnect();
  }
}

/** Measures every phase of the section on the bench's Redis. */
async function measureDecider(ctx: BenchContext): Promise<DeciderMeasured> {
  const { admin, redisPort: port } = ctx;
  const redisVersion = /redis_version:(\S+)/.exec(await admin.info('server'))?.[1] ?? '?';

  // 1. the ceiling: a minimal token bucket by redis-benchmark (pipelined and not)
  const sha = String(await admin.script('LOAD', readFileSync(join(REPO_ROOT, 'bench', 'minimal-token-bucket.lua'), 'utf8')));
  const ceilingPipelined = await redisBenchmark(port, sha, 16);
  const ceilingPlain = await redisBenchmark(port, sha, 1);
  await admin.flushall();

  // 2. uniform and Zipf: tollgate (3 limits + usage event, micro-batched) and rate-limiter-flexible (1 limit, no event)
  let costRows: string[] = [];
  let memory = { tenant: 0, bucket: 0, record: 0, samples: 0 };
  const uniform = await measureWorkload(ctx, UNIFORM, async (tollgate) => {
    costRows = await commandCosts(admin, tollgate.count);
    memory = await bytesPerTenant(admin);
  });
  const zipf = await measureWorkload(ctx, zipfWorkload());

  // 3. tollgate with 1 limit (the token bucket), uniform
  const single = await tollgateOn(port, UNIFORM, LIMITS.slice(0, 1));
  const oneLimit = await closedLoop(admin, single.decideOnce);
  progress('uniform tollgate, 1 limit', oneLimit);
  single.client.disconnect();
  await admin.flushall();

  // 4. durability: AOF fsync on every write, then WAIT for one replica (AOF everysec)
  const durability = await measureDurability(port, admin);
  return {
    redisVersion,
    uniform,
    zipf,
    oneLimit,
    ceilingPipelined,
    ceilingPlain,
    bytesPerBucket: memory.bucket,
    bytesPerTenant: memory.tenant,
    bytesPerRecord: memory.record,
    samples: memory.samples,
    ...durability,
    costRows,
  };
}

export async function benchDecider(ctx: BenchContext): Promise<BenchSection> {
  return deciderReport(await measureDecider(ctx));
}
