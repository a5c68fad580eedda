/**
 * The decider section of `npm run bench` (issue 16: the decider): one Node process, 256 decisions in flight,
 * tollgate `RedisDecider.decide` (3 limits + the usage event + the admitted counter; and 1 limit) vs
 * rate-limiter-flexible `RateLimiterRedis.consume` (1 limit, no event) on the same key sequence, uniform over
 * 100k tenants and Zipf (s = 1.1) over 1M tenants, vs `redis-benchmark` EVALSHA of a minimal token bucket (the
 * ceiling). Also p99 at half each maximum rate (open loop), Redis CPU (INFO) and client CPU per decision, where
 * Redis time goes (INFO commandstats), Redis memory per tenant, and the cost of fsync-always and of WAIT for a replica.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { REPO_ROOT, freePort, startRedis, stopProcess } from '../infra/services.js';
import { RedisDecider, connectDeciderRedis, type DecideInput, type LimitSpec } from '../src/decider/index.js';
import { compileRequest } from '../src/decider/compile.js';
import { parseEventId, parseKeyId, parseLimitId, systemClock } from '../src/shared/index.js';
import type { Figure } from './graphql.js';
import type { BenchContext, BenchSection } from './run.js';

const execFileAsync = promisify(execFile);
const ms = (value: number): string => value.toFixed(2);
/** Each phase's length, as bench/run.ts reads it. */
const DURATION_MS = Number(process.env['BENCH_DURATION_MS'] ?? 8_000);
const IN_FLIGHT = 256;
const TENANTS = 100_000;
const SHARDS = 256;

interface LoadResult {
  count: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  redisCpuUsPerOp: number;
  /** CPU of this Node process per operation (the client side), in µs. */
  nodeCpuUsPerOp: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

async function redisCpuSeconds(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const read = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  return read('used_cpu_sys') + read('used_cpu_user');
}

/** Redis commands per operation and their µs per call (INFO commandstats, reset before the phase). */
async function commandCosts(admin: Redis, operations: number): Promise<string[]> {
  const stats = await admin.info('commandstats');
  const rows: string[] = [];
  for (const match of stats.matchAll(/^cmdstat_([a-z|]+):calls=(\d+),usec=(\d+),usec_per_call=([\d.]+)/gm)) {
    const [, name = '', calls = '0', usec = '0', perCall = '0'] = match;
    if (name === 'config|resetstat' || name === 'info' || (name !== 'evalsha' && Number(calls) < operations / 100)) continue;
    rows.push(
      `| ${name} | ${(Number(calls) / operations).toFixed(3)} | ${Number(perCall).toFixed(2)} | ${(Number(usec) / operations).toFixed(2)} |`,
    );
  }
  return rows;
}

/** Closed loop: `inFlight` workers, each issuing its next call as soon as the last answers. */
async function closedLoop(admin: Redis, call: (i: number) => Promise<unknown>): Promise<LoadResult> {
  const latencies: number[] = [];
  let count = 0;
  const cpuBefore = await redisCpuSeconds(admin);
  const nodeBefore = process.cpuUsage();
  const started = performance.now();
  const deadline = started + DURATION_MS;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async (_, worker) => {
      let i = worker;
      while (performance.now() < deadline) {
        const t0 = performance.now();
        await call(i);
        latencies.push(performance.now() - t0);
        count += 1;
        i += IN_FLIGHT;
      }
    }),
  );
  const elapsedS = (performance.now() - started) / 1000;
  const node = process.cpuUsage(nodeBefore);
  const cpu = (await redisCpuSeconds(admin)) - cpuBefore;
  latencies.sort((a, b) => a - b);
  return {
    nodeCpuUsPerOp: (node.user + node.system) / count,
    count,
    perSecond: count / elapsedS,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    redisCpuUsPerOp: (cpu * 1e6) / count,
  };
}

/** Open loop at a fixed rate: latency as a client at that rate sees it. */
async function openLoop(ratePerS: number, call: (i: number) => Promise<unknown>): Promise<{ p50Ms: number; p99Ms: number; sent: number }> {
  const latencies: number[] = [];
  const pending: Promise<unknown>[] = [];
  const started = performance.now();
  let sent = 0;
  while (performance.now() - started < DURATION_MS) {
    const due = Math.floor(((performance.now() - started) / 1000) * ratePerS);
    while (sent < due) {
      const t0 = performance.now();
      const i = sent;
      pending.push(call(i).then(() => latencies.push(performance.now() - t0)));
      sent += 1;
    }
    // a 1 ms timer tick, not a busy loop: the generator must not eat the CPU Redis and the decider share
    await new Promise((resolveTick) => setTimeout(resolveTick, 1));
  }
  await Promise.all(pending);
  latencies.sort((a, b) => a - b);
  return { p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), sent };
}

const MONTH = { unit: 'month', anchorDay: 1, timeZone: 'UTC' } as const;
const LIMITS: LimitSpec[] = [
  {
    id: parseLimitId('burst'),
    scope: 'apiKey',
    algorithm: { kind: 'token-bucket', capacity: 1_000_000, refillAmount: 1_000, refillPeriodMs: 1_000 },
    mode: 'hard',
    onDeciderDown: 'open',
  },
  {
    id: parseLimitId('minute'),
    scope: 'tenant',
    algorithm: { kind: 'sliding-window', limit: 1_000_000, windowMs: 60_000 },
    mode: 'hard',
    onDeciderDown: 'open',
  },
  {
    id: parseLimitId('month'),
    scope: 'tenant',
    algorithm: { kind: 'period-quota', limit: 1_000_000_000, period: MONTH, thresholdsPercent: [80, 100] },
    mode: 'hard',
    onDeciderDown: 'open',
  },
];

const keyId = parseKeyId('k1');
let requestCounter = 0;

/** Zipf exponent and population of the skewed workload. */
const ZIPF_S = 1.1;
const ZIPF_TENANTS = 1_000_000;
/** Length of each workload's precomputed tenant sequence (request i takes element i mod this). */
const SEQUENCE = 1 << 20;

/** A key distribution: request i goes to tenant `tenantAt(i)`; tollgate and rate-limiter-flexible run the same one. */
interface Workload {
  name: 'uniform' | 'zipf';
  describe: string;
  tenantAt: (i: number) => string;
}

const uniformIds = Array.from({ length: TENANTS }, (_, index) => `t${index}`);
const UNIFORM: Workload = {
  name: 'uniform',
  describe: `uniform over ${TENANTS.toLocaleString('en')} tenants`,
  tenantAt: (i) => uniformIds[(i * 7919) % TENANTS] as string,
};

/** Ranks 0..n-1 drawn with P(k) ∝ 1/(k+1)^s: inverse CDF by binary search, a fixed LCG so every run draws the same. */
function zipfRanks(n: number, s: number, count: number): Uint32Array {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k += 1) {
    sum += 1 / Math.pow(k + 1, s);
    cdf[k] = sum;
  }
  const out = new Uint32Array(count);
  let x = 12345;
  for (let i = 0; i < count; i += 1) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    const u = (x / 2 ** 32) * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((cdf[mid] as number) < u) lo = mid + 1;
      else hi = mid;
    }
    out[i] = lo;
  }
  return out;
}

function zipfWorkload(): Workload {
  const ranks = zipfRanks(ZIPF_TENANTS, ZIPF_S, SEQUENCE);
  const names = new Map<number, string>();
  const nameOf = (rank: number): string => {
    let name = names.get(rank);
    if (name === undefined) {
      name = `z${rank}`;
      names.set(rank, name);
    }
    return name;
  };
  for (const rank of ranks) nameOf(rank);
  const distinct = names.size;
  const top = ranks.reduce((n, rank) => n + (rank === 0 ? 1 : 0), 0) / SEQUENCE;
  return {
    name: 'zipf',
    describe: `Zipf s=${ZIPF_S} over ${ZIPF_TENANTS.toLocaleString('en')} tenants (${distinct.toLocaleString('en')} distinct in ${SEQUENCE.toLocaleString('en')} draws; the hottest takes ${(top * 100).toFixed(1)}%)`,
    tenantAt: (i) => names.get(ranks[i % SEQUENCE] as number) as string,
  };
}

function decideInput(workload: Workload, i: number, limits: LimitSpec[] = LIMITS): DecideInput {
  requestCounter += 1;
  return {
    tenant: workload.tenantAt(i) as DecideInput['tenant'],
    keyId,
    requestId: parseEventId(`b${requestCounter}`),
    operation: 'listProducts',
    cost: 3,
    limits,
    billingPeriod: MONTH,
    policyVersion: 1,
  };
}

async function redisBenchmark(port: number, sha: string, pipeline: number): Promise<number> {
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

/** One workload's phases: closed-loop maximum and open-loop latency at half of it, tollgate and rate-limiter-flexible. */
interface WorkloadMeasured {
  workload: Workload;
  tollgate: LoadResult;
  rlf: LoadResult;
  tollgateHalf: OpenLoopResult;
  rlfHalf: OpenLoopResult;
}

type OpenLoopResult = Awaited<ReturnType<typeof openLoop>>;

interface DeciderMeasured {
  redisVersion: string;
  uniform: WorkloadMeasured;
  zipf: WorkloadMeasured;
  oneLimit: LoadResult;
  ceilingPipelined: number;
  ceilingPlain: number;
  bytesPerBucket: number;
  bytesPerTenant: number;
  bytesPerRecord: number;
  samples: number;
  always: LoadResult;
  waited: LoadResult;
  /** Decisions whose WAIT timed out before the replica acknowledged. */
  unacknowledged: number;
  costRows: string[];
}

/** One phase's result on the console as it ends (a later phase that fails leaves these). */
function progress(what: string, result: LoadResult): void {
  console.log(
    `  ${what}: ${result.perSecond.toFixed(0)}/s, Redis CPU ${result.redisCpuUsPerOp.toFixed(2)} µs/op, client CPU ${result.nodeCpuUsPerOp.toFixed(2)} µs/op`,
  );
}

/** A decider on its own connection, and a call that decides request i of `workload` (expected admitted). */
async function tollgateOn(port: number, workload: Workload, limits: LimitSpec[] = LIMITS) {
  const client = await connectDeciderRedis({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 5_000 });
  const decider = new RedisDecider(client, { shardCount: SHARDS, clock: systemClock });
  const decideOnce = async (i: number): Promise<void> => {
    const decision = await decider.decide(decideInput(workload, i, limits));
    if (decision.kind !== 'allowed') throw new Error(`unexpected ${decision.kind}`);
  };
  return { client, decideOnce };
}

/** rate-limiter-flexible `consume` of the same tenants, 1 limit, no event. */
async function rlfOn(port: number, workload: Workload) {
  const client = new Redis({ port, enableOfflineQueue: false });
  await new Promise((resolveReady) => client.once('ready', resolveReady));
  const limiter = new RateLimiterRedis({ storeClient: client, points: 1_000_000, duration: 1, keyPrefix: 'rlf' });
  return { client, consume: (i: number) => limiter.consume(workload.tenantAt(i), 3) };
}

/** Average MEMORY USAGE of what each sampled tenant of the uniform workload holds: its limit states and admitted counter, and its request records. */
async function bytesPerTenant(admin: Redis): Promise<{ tenant: number; bucket: number; record: number; samples: number }> {
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
  const rlfHalf = await openLoop(rlf.perSecond / 2, rlfSide.consume);
  rlfSide.client.disconnect();
  await admin.flushall();
  const side = await tollgateOn(port, workload);
  await admin.config('RESETSTAT');
  const tollgate = await closedLoop(admin, side.decideOnce);
  progress(`${workload.name} tollgate`, tollgate);
  await afterTollgate?.(tollgate);
  const tollgateHalf = await openLoop(tollgate.perSecond / 2, side.decideOnce);
  side.client.disconnect();
  await admin.flushall();
  console.log(`  ${workload.name} p99 at half rate: tollgate ${ms(tollgateHalf.p99Ms)} ms, rate-limiter-flexible ${ms(rlfHalf.p99Ms)} ms`);
  return { workload, tollgate, rlf, tollgateHalf, rlfHalf };
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
  let waited: LoadResult;
  let unacknowledged = 0;
  try {
    while (!(await replicaAdmin.info('replication')).includes('master_link_status:up')) await new Promise((wait) => setTimeout(wait, 50));
    const waiting = new RedisDecider(client, { shardCount: SHARDS, clock: systemClock, waitForReplicas: { replicas: 1, timeoutMs: 50 } });
    waited = await closedLoop(admin, async (i) => {
      const decision = await waiting.decide(decideInput(UNIFORM, i));
      if (decision.kind !== 'allowed') throw new Error(`unexpected ${decision.kind}`);
      // a WAIT that timed out (a loaded machine) still decided: counted, reported
      if (decision.replicasAcked !== 1) unacknowledged += 1;
    });
  } finally {
    replicaAdmin.disconnect();
    await stopProcess(replicaProc);
    rmSync(replicaDir, { recursive: true, force: true });
  }
  client.disconnect();
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
    always,
    waited,
    unacknowledged,
    costRows,
  };
}

/** One row of the section's table. */
function row(what: string, result: LoadResult, half?: OpenLoopResult): string {
  const halfP99 = half === undefined ? '' : ms(half.p99Ms);
  return `| ${what} | ${result.perSecond.toFixed(0)} | ${ms(result.p50Ms)} | ${ms(result.p99Ms)} | ${halfP99} | ${result.redisCpuUsPerOp.toFixed(2)} | ${result.nodeCpuUsPerOp.toFixed(1)} |`;
}

/** The section's figures and its lines in BENCHMARKS.md. */
function deciderReport(measured: DeciderMeasured): BenchSection {
  const { redisVersion, uniform, zipf, oneLimit, ceilingPipelined, ceilingPlain, always, waited, costRows } = measured;
  const tollgate = uniform.tollgate;
  const figures: Figure[] = [
    {
      name: 'decider_vs_rate_limiter_flexible',
      value: tollgate.perSecond / uniform.rlf.perSecond,
      unit: 'ratio',
      note: `${uniform.workload.describe}: ${tollgate.perSecond.toFixed(0)} vs ${uniform.rlf.perSecond.toFixed(0)} decisions/s; tollgate checks 3 limits and appends the usage event, rate-limiter-flexible 1 limit and no event (target ≥ 1.0)`,
    },
    {
      name: 'decider_vs_rlf_zipf',
      value: zipf.tollgate.perSecond / zipf.rlf.perSecond,
      unit: 'ratio',
      note: `${zipf.workload.describe}: ${zipf.tollgate.perSecond.toFixed(0)} vs ${zipf.rlf.perSecond.toFixed(0)} decisions/s (target ≥ 1.5)`,
    },
    {
      name: 'decider_vs_evalsha_ceiling',
      value: tollgate.perSecond / ceilingPipelined,
      unit: 'ratio',
      note: `ceiling: redis-benchmark EVALSHA of a minimal 1-key token bucket, 50 clients, pipeline 16: ${ceilingPipelined.toFixed(0)}/s (unpipelined ${ceilingPlain.toFixed(0)}/s)`,
    },
    {
      name: 'decider_p99_ms_half_load',
      value: uniform.tollgateHalf.p99Ms,
      unit: 'ms',
      note: `uniform, open loop at ${(tollgate.perSecond / 2).toFixed(0)}/s for ${DURATION_MS / 1000} s; p50 ${uniform.tollgateHalf.p50Ms.toFixed(3)} ms; Zipf ${ms(zipf.tollgateHalf.p99Ms)} ms; rate-limiter-flexible ${ms(uniform.rlfHalf.p99Ms)} / ${ms(zipf.rlfHalf.p99Ms)} ms (target ≤ 1)`,
    },
    {
      name: 'redis_bytes_per_tenant',
      value: measured.bytesPerTenant,
      unit: 'bytes',
      note: `MEMORY USAGE of one tenant's limit states (3 limits) and admitted counter, averaged over ${measured.samples} tenants (target ≤ 256); each admitted request's record adds ${measured.bytesPerRecord.toFixed(0)} B for its lifetime (15 min)`,
    },
    {
      name: 'redis_bytes_per_bucket',
      value: measured.bytesPerBucket,
      unit: 'bytes',
      note: `MEMORY USAGE of the token-bucket key of the same tenants (key name, msgpack value of 3 integers, TTL)`,
    },
    {
      name: 'decider_decisions_per_s',
      value: tollgate.perSecond,
      unit: '1/s',
      note: `closed loop, ${IN_FLIGHT} in flight, uniform; p50 ${ms(tollgate.p50Ms)} ms, p99 ${ms(tollgate.p99Ms)} ms; Zipf ${zipf.tollgate.perSecond.toFixed(0)}/s; 1 limit ${oneLimit.perSecond.toFixed(0)}/s`,
    },
    {
      name: 'decider_redis_cpu_us_per_decision',
      value: tollgate.redisCpuUsPerOp,
      unit: 'µs',
      note: `uniform, 3 limits + usage event + admitted counter (target ≤ 6); Zipf ${zipf.tollgate.redisCpuUsPerOp.toFixed(2)} µs, 1 limit ${oneLimit.redisCpuUsPerOp.toFixed(2)} µs; rate-limiter-flexible ${uniform.rlf.redisCpuUsPerOp.toFixed(2)} µs per consume (Zipf ${zipf.rlf.redisCpuUsPerOp.toFixed(2)})`,
    },
    {
      name: 'decider_node_cpu_us_per_decision',
      value: tollgate.nodeCpuUsPerOp,
      unit: 'µs',
      note: `client side, uniform (target ≤ 8); Zipf ${zipf.tollgate.nodeCpuUsPerOp.toFixed(2)} µs; rate-limiter-flexible ${uniform.rlf.nodeCpuUsPerOp.toFixed(2)} µs per consume`,
    },
    {
      name: 'decider_fsync_always_ratio',
      value: always.perSecond / tollgate.perSecond,
      unit: 'ratio',
      note: `${always.perSecond.toFixed(0)} decisions/s with appendfsync always vs everysec`,
    },
    {
      name: 'decider_wait_replica_ratio',
      value: waited.perSecond / tollgate.perSecond,
      unit: 'ratio',
      note: `${waited.perSecond.toFixed(0)} decisions/s with WAIT 1 replica (everysec) vs without; p99 ${ms(waited.p99Ms)} ms; ${measured.unacknowledged} of ${waited.count} not acknowledged within 50 ms`,
    },
  ];
  const lines = [
    '## Decider',
    '',
    `One Node process, ${IN_FLIGHT} in flight, ${DURATION_MS / 1000} s per phase, one Redis ${redisVersion} (AOF everysec) on loopback, client and Redis sharing ${cpus().length} cores.`,
    `Workloads (the same key sequence for both libraries): ${uniform.workload.describe}; ${zipf.workload.describe}.`,
    '',
    '| what | decisions/s | p50 ms | p99 ms | p99 ms at half rate (open loop) | Redis CPU µs/op | client CPU µs/op |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    row('tollgate decide, uniform: 3 limits + usage event (micro-batched)', tollgate, uniform.tollgateHalf),
    row('rate-limiter-flexible consume, uniform: 1 limit, no event', uniform.rlf, uniform.rlfHalf),
    row('tollgate decide, Zipf: 3 limits + usage event', zipf.tollgate, zipf.tollgateHalf),
    row('rate-limiter-flexible consume, Zipf: 1 limit, no event', zipf.rlf, zipf.rlfHalf),
    row('tollgate decide, uniform: 1 limit + usage event', oneLimit),
    row('tollgate decide, uniform, appendfsync always', always),
    row('tollgate decide, uniform, everysec + WAIT 1 replica', waited),
    `| redis-benchmark EVALSHA minimal token bucket, pipeline 16 (ceiling) | ${ceilingPipelined.toFixed(0)} | | | | | |`,
    `| redis-benchmark EVALSHA minimal token bucket, no pipeline | ${ceilingPlain.toFixed(0)} | | | | | |`,
    '',
    'The decider always keeps a request record (idempotency, settle, the retry of a lost reply): a request with or without a client',
    'Idempotency-Key costs the same here.',
    '',
    'Where Redis time goes in the uniform tollgate phase (`INFO commandstats`; commands run by the script are counted on their own',
    'and inside `evalsha`, whose time includes them):',
    '',
    '| command | calls per decision | µs per call | µs per decision |',
    '| --- | ---: | ---: | ---: |',
    ...costRows,
    '',
    `Redis memory per tenant (limit states and admitted counter): ${measured.bytesPerTenant.toFixed(0)} bytes; per token-bucket key ${measured.bytesPerBucket.toFixed(0)} bytes; per request record ${measured.bytesPerRecord.toFixed(0)} bytes (MEMORY USAGE).`,
    '',
  ];
  return { lines, figures };
}

export async function benchDecider(ctx: BenchContext): Promise<BenchSection> {
  return deciderReport(await measureDecider(ctx));
}
