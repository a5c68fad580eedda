/**
 * The decider section of `npm run bench` (issue: the decider): one Node process, 256 decisions in flight,
 * 100k random tenants, 3 limits + the usage event, vs rate-limiter-flexible `RateLimiterRedis.consume`
 * (1 limit, no event) under the same load, vs `redis-benchmark` EVALSHA of a minimal token bucket (the
 * ceiling). Also p99 at half the maximum rate (open loop), Redis CPU per decision, Redis memory per bucket
 * key, and the cost of fsync-always and of WAIT for a replica.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { REPO_ROOT, freePort, startRedis, stopProcess } from '../infra/services.js';
import { RedisDecider, bucketKey, connectDeciderRedis, shardOf, type DecideInput, type LimitSpec } from '../src/decider/index.js';
import { parseEventId, parseKeyId, parseLimitId, parseTenantId, systemClock } from '../src/shared/index.js';
import type { Figure } from './graphql.js';
import type { BenchContext, BenchSection } from './run.js';

const execFileAsync = promisify(execFile);
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

const tenantIds = Array.from({ length: TENANTS }, (_, index) => parseTenantId(`t${index}`));
const keyId = parseKeyId('k1');
let requestCounter = 0;

function decideInput(i: number): DecideInput {
  requestCounter += 1;
  return {
    tenant: tenantIds[(i * 7919) % TENANTS] as DecideInput['tenant'],
    keyId,
    requestId: parseEventId(`b${requestCounter}`),
    operation: 'listProducts',
    cost: 3,
    limits: LIMITS,
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

interface DeciderMeasured {
  redisVersion: string;
  tollgate: LoadResult;
  rlf: LoadResult;
  ceilingPipelined: number;
  ceilingPlain: number;
  half: { p50Ms: number; p99Ms: number; sent: number };
  bytesPerBucket: number;
  samples: number;
  always: LoadResult;
  waited: LoadResult;
  costRows: string[];
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

  // 2. rate-limiter-flexible: 1 limit, no event
  const rlfClient = new Redis({ port, enableOfflineQueue: false });
  await new Promise((resolveReady) => rlfClient.once('ready', resolveReady));
  const limiter = new RateLimiterRedis({ storeClient: rlfClient, points: 1_000_000, duration: 1, keyPrefix: 'rlf' });
  const rlf = await closedLoop(admin, (i) => limiter.consume(`t${(i * 7919) % TENANTS}`, 3));
  rlfClient.disconnect();
  await admin.flushall();

  // 3. tollgate: 3 limits + usage event, micro-batched per shard
  const client = await connectDeciderRedis({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 5_000 });
  const decider = new RedisDecider(client, { shardCount: SHARDS, clock: systemClock });
  const decideOnce = async (i: number): Promise<void> => {
    const decision = await decider.decide(decideInput(i));
    if (decision.kind !== 'allowed') throw new Error(`unexpected ${decision.kind}`);
  };
  await admin.config('RESETSTAT');
  const tollgate = await closedLoop(admin, decideOnce);
  const costRows = await commandCosts(admin, tollgate.count);

  // 4. p99 at half the maximum rate (open loop)
  const half = await openLoop(tollgate.perSecond / 2, decideOnce);

  // 5. memory per bucket key: MEMORY USAGE of token-bucket keys written above
  const sample = tenantIds
    .slice(0, 2_000)
    .map((tenant) =>
      bucketKey({ shard: shardOf(tenant, SHARDS), tenant, limitId: parseLimitId('burst'), subject: { scope: 'apiKey', keyId } }),
    );
  const sizes = (await Promise.all(sample.map((key) => admin.memory('USAGE', key)))).filter(
    (size): size is number => typeof size === 'number',
  );
  const bytesPerBucket = sizes.reduce((sum, size) => sum + size, 0) / sizes.length;

  // 6. durability: AOF fsync on every write, then WAIT for one replica (AOF everysec)
  await admin.config('SET', 'appendfsync', 'always');
  const always = await closedLoop(admin, decideOnce);
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
  try {
    while (!(await replicaAdmin.info('replication')).includes('master_link_status:up')) await new Promise((wait) => setTimeout(wait, 50));
    const waiting = new RedisDecider(client, { shardCount: SHARDS, clock: systemClock, waitForReplicas: { replicas: 1, timeoutMs: 50 } });
    waited = await closedLoop(admin, async (i) => {
      const decision = await waiting.decide(decideInput(i));
      if (decision.kind !== 'allowed' || decision.replicasAcked !== 1) throw new Error('replica did not acknowledge');
    });
  } finally {
    replicaAdmin.disconnect();
    await stopProcess(replicaProc);
    rmSync(replicaDir, { recursive: true, force: true });
  }
  client.disconnect();
  return {
    redisVersion,
    tollgate,
    rlf,
    ceilingPipelined,
    ceilingPlain,
    half,
    bytesPerBucket,
    samples: sizes.length,
    always,
    waited,
    costRows,
  };
}

/** The section's figures and its lines in BENCHMARKS.md. */
function deciderReport(measured: DeciderMeasured): BenchSection {
  const { redisVersion, tollgate, rlf, ceilingPipelined, ceilingPlain, half, bytesPerBucket, always, waited, costRows } = measured;
  const figures: Figure[] = [];
  const lines: string[] = [];
  figures.push(
    {
      name: 'decider_vs_rate_limiter_flexible',
      value: tollgate.perSecond / rlf.perSecond,
      unit: 'ratio',
      note: `${tollgate.perSecond.toFixed(0)} vs ${rlf.perSecond.toFixed(0)} decisions/s; tollgate checks 3 limits and appends the usage event, rate-limiter-flexible 1 limit and no event`,
    },
    {
      name: 'decider_vs_evalsha_ceiling',
      value: tollgate.perSecond / ceilingPipelined,
      unit: 'ratio',
      note: `ceiling: redis-benchmark EVALSHA of a minimal 1-key token bucket, 50 clients, pipeline 16: ${ceilingPipelined.toFixed(0)}/s (unpipelined ${ceilingPlain.toFixed(0)}/s)`,
    },
    {
      name: 'decider_p99_ms_half_load',
      value: half.p99Ms,
      unit: 'ms',
      note: `open loop at ${(tollgate.perSecond / 2).toFixed(0)}/s for ${DURATION_MS / 1000} s; p50 ${half.p50Ms.toFixed(3)} ms`,
    },
    {
      name: 'redis_bytes_per_bucket',
      value: bytesPerBucket,
      unit: 'bytes',
      note: `MEMORY USAGE averaged over ${measured.samples} token-bucket keys (key name, msgpack value of 3 integers, TTL)`,
    },
    {
      name: 'decider_decisions_per_s',
      value: tollgate.perSecond,
      unit: '1/s',
      note: `closed loop, ${IN_FLIGHT} in flight, ${TENANTS} tenants; p50 ${tollgate.p50Ms.toFixed(2)} ms, p99 ${tollgate.p99Ms.toFixed(2)} ms`,
    },
    {
      name: 'decider_redis_cpu_us_per_decision',
      value: tollgate.redisCpuUsPerOp,
      unit: 'µs',
      note: `rate-limiter-flexible: ${rlf.redisCpuUsPerOp.toFixed(2)} µs per consume`,
    },
    {
      name: 'decider_node_cpu_us_per_decision',
      value: tollgate.nodeCpuUsPerOp,
      unit: 'µs',
      note: `client side; rate-limiter-flexible: ${rlf.nodeCpuUsPerOp.toFixed(2)} µs per consume`,
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
      note: `${waited.perSecond.toFixed(0)} decisions/s with WAIT 1 replica (everysec) vs without; p99 ${waited.p99Ms.toFixed(2)} ms`,
    },
  );

  lines.push(
    '## Decider',
    '',
    `One Node process, ${IN_FLIGHT} in flight, ${TENANTS} random tenants, ${DURATION_MS / 1000} s per phase, one Redis ${redisVersion} (AOF everysec) on loopback, client and Redis sharing ${cpus().length} cores.`,
    '',
    '| what | decisions/s | p50 ms | p99 ms | Redis CPU µs/op |',
    '| --- | ---: | ---: | ---: | ---: |',
    `| tollgate decide: 3 limits + usage event (micro-batched) | ${tollgate.perSecond.toFixed(0)} | ${tollgate.p50Ms.toFixed(2)} | ${tollgate.p99Ms.toFixed(2)} | ${tollgate.redisCpuUsPerOp.toFixed(2)} |`,
    `| rate-limiter-flexible consume: 1 limit, no event | ${rlf.perSecond.toFixed(0)} | ${rlf.p50Ms.toFixed(2)} | ${rlf.p99Ms.toFixed(2)} | ${rlf.redisCpuUsPerOp.toFixed(2)} |`,
    `| redis-benchmark EVALSHA minimal token bucket, pipeline 16 (ceiling) | ${ceilingPipelined.toFixed(0)} | | | |`,
    `| redis-benchmark EVALSHA minimal token bucket, no pipeline | ${ceilingPlain.toFixed(0)} | | | |`,
    `| tollgate decide, appendfsync always | ${always.perSecond.toFixed(0)} | ${always.p50Ms.toFixed(2)} | ${always.p99Ms.toFixed(2)} | ${always.redisCpuUsPerOp.toFixed(2)} |`,
    `| tollgate decide, everysec + WAIT 1 replica | ${waited.perSecond.toFixed(0)} | ${waited.p50Ms.toFixed(2)} | ${waited.p99Ms.toFixed(2)} | ${waited.redisCpuUsPerOp.toFixed(2)} |`,
    '',
    `Client CPU per operation (this Node process): tollgate ${tollgate.nodeCpuUsPerOp.toFixed(1)} µs per decision, rate-limiter-flexible ${rlf.nodeCpuUsPerOp.toFixed(1)} µs per consume.`,
    '',
    'Where Redis time goes in the tollgate phase (`INFO commandstats`; commands run by the script are counted on their own',
    'and inside `evalsha`, whose time includes them):',
    '',
    '| command | calls per decision | µs per call | µs per decision |',
    '| --- | ---: | ---: | ---: |',
    ...costRows,
    '',
    `At half the maximum rate (${(tollgate.perSecond / 2).toFixed(0)}/s, open loop): p50 ${half.p50Ms.toFixed(3)} ms, p99 ${half.p99Ms.toFixed(3)} ms.`,
    `Redis memory per token-bucket key: ${bytesPerBucket.toFixed(0)} bytes (MEMORY USAGE).`,
    '',
  );
  return { lines, figures };
}

export async function benchDecider(ctx: BenchContext): Promise<BenchSection> {
  return deciderReport(await measureDecider(ctx));
}
