/**
 * The decider bench's report (bench/decider): its figures in bench/results.json and its lines in BENCHMARKS.md.
 */
import { cpus } from 'node:os';
import type { Figure } from '../graphql.js';
import type { BenchSection } from '../run.js';
import { DURATION_MS, IN_FLIGHT, type HalfLoadResult, type LoadResult, type OpenLoopResult } from './load.js';
import type { Workload } from './workloads.js';

const ms = (value: number): string => value.toFixed(2);

/** One workload's phases: closed-loop maximum and open-loop latency at half of it, tollgate and rate-limiter-flexible. */
export interface WorkloadMeasured {
  workload: Workload;
  tollgate: LoadResult;
  rlf: LoadResult;
  tollgateHalf: HalfLoadResult;
  rlfHalf: HalfLoadResult;
}

export interface DeciderMeasured {
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

/** One row of the section's table. */
function row(what: string, result: LoadResult, half?: OpenLoopResult): string {
  const halfP99 = half === undefined ? '' : ms(half.p99Ms);
  return `| ${what} | ${result.perSecond.toFixed(0)} | ${ms(result.p50Ms)} | ${ms(result.p99Ms)} | ${halfP99} | ${result.redisCpuUsPerOp.toFixed(2)} | ${result.nodeCpuUsPerOp.toFixed(1)} |`;
}

/** The section's figures and its lines in BENCHMARKS.md. */
export function deciderReport(measured: DeciderMeasured): BenchSection {
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
      value: uniform.tollgateHalf.quiet.p99Ms,
      unit: 'ms',
      note: `uniform, open loop at ${(tollgate.perSecond / 2).toFixed(0)}/s for ${DURATION_MS / 1000} s with no AOF rewrite in the window, latency from each request's scheduled send time (generator at most ${ms(uniform.tollgateHalf.quiet.maxLagMs)} ms behind); p50 ${uniform.tollgateHalf.quiet.p50Ms.toFixed(3)} ms; Zipf ${ms(zipf.tollgateHalf.quiet.p99Ms)} ms; rate-limiter-flexible ${ms(uniform.rlfHalf.quiet.p99Ms)} / ${ms(zipf.rlfHalf.quiet.p99Ms)} ms. As Redis runs (auto AOF rewrite on): tollgate ${ms(uniform.tollgateHalf.asIs.p99Ms)} / ${ms(zipf.tollgateHalf.asIs.p99Ms)} ms with ${uniform.tollgateHalf.asIs.rewrites} / ${zipf.tollgateHalf.asIs.rewrites} rewrites in the window, rate-limiter-flexible ${ms(uniform.rlfHalf.asIs.p99Ms)} / ${ms(zipf.rlfHalf.asIs.p99Ms)} ms with ${uniform.rlfHalf.asIs.rewrites} / ${zipf.rlfHalf.asIs.rewrites} (target ≤ 1)`,
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
    '| what | decisions/s | p50 ms | p99 ms | p99 ms at half rate (open loop, no AOF rewrite in the window) | Redis CPU µs/op | client CPU µs/op |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    row('tollgate decide, uniform: 3 limits + usage event (micro-batched)', tollgate, uniform.tollgateHalf.quiet),
    row('rate-limiter-flexible consume, uniform: 1 limit, no event', uniform.rlf, uniform.rlfHalf.quiet),
    row('tollgate decide, Zipf: 3 limits + usage event', zipf.tollgate, zipf.tollgateHalf.quiet),
    row('rate-limiter-flexible consume, Zipf: 1 limit, no event', zipf.rlf, zipf.rlfHalf.quiet),
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
