/**
 * The decider bench's load generators (bench/decider): a closed loop (the maximum rate) and an open loop at a fixed
 * rate (the latency a client at that rate sees), Redis and client CPU per operation, and INFO commandstats.
 */
import type { Redis } from 'ioredis';

/** Each phase's length, as bench/run.ts reads it. */
export const DURATION_MS = Number(process.env['BENCH_DURATION_MS'] ?? 8_000);
/** Operations in flight in the closed loop. */
export const IN_FLIGHT = 256;

export interface LoadResult {
  count: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  redisCpuUsPerOp: number;
  /** CPU of this Node process per operation (the client side), in µs. */
  nodeCpuUsPerOp: number;
}

export interface OpenLoopResult {
  p50Ms: number;
  p99Ms: number;
  sent: number;
  /** The longest the generator fell behind its schedule (ms): how late the last request of a tick left. */
  maxLagMs: number;
}

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

async function redisCpuSeconds(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const read = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  return read('used_cpu_sys') + read('used_cpu_user');
}

/** Redis commands per operation and their µs per call (INFO commandstats, reset before the phase). */
export async function commandCosts(admin: Redis, operations: number): Promise<string[]> {
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

/** Closed loop: `IN_FLIGHT` workers, each issuing its next call as soon as the last answers. */
export async function closedLoop(admin: Redis, call: (i: number) => Promise<unknown>): Promise<LoadResult> {
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

/**
 * Open loop at a fixed rate: request k is due at `started + k / rate` (absolute time, never re-based on when the
 * previous tick ran), and its latency is measured from that intended time to its answer, so a generator or event
 * loop that falls behind shows as latency (no coordinated omission) instead of thinning the load. Each tick sends
 * every request then due, in one event-loop turn (the decider batches them as a real server's turn would), then
 * yields until the next one is due: `setImmediate` while it is under a millisecond away (a timer tick is 1 ms or
 * more and would bunch arrivals), a timer otherwise, so the generator does not spin on the CPU Redis and the
 * decider share.
 */
export async function openLoop(ratePerS: number, call: (i: number) => Promise<unknown>): Promise<OpenLoopResult> {
  const intervalMs = 1000 / ratePerS;
  const total = Math.floor((DURATION_MS / 1000) * ratePerS);
  const latencies = new Float64Array(total);
  let done = 0;
  let maxLagMs = 0;
  let failure: Error | undefined;
  const started = performance.now();
  let sent = 0;
  while (sent < total) {
    const now = performance.now();
    const due = Math.min(total, Math.floor((now - started) / intervalMs) + 1);
    for (; sent < due; sent += 1) {
      const index = sent;
      const intended = started + index * intervalMs;
      call(index).then(
        () => {
          latencies[index] = performance.now() - intended;
          done += 1;
        },
        (error: unknown) => {
          failure ??= error instanceof Error ? error : new Error(String(error));
          done += 1;
        },
      );
    }
    maxLagMs = Math.max(maxLagMs, now - (started + (due - 1) * intervalMs));
    const nextAt = started + due * intervalMs;
    const waitMs = nextAt - performance.now();
    await new Promise<void>((resolveTick) => (waitMs < 1 ? setImmediate(resolveTick) : setTimeout(resolveTick, Math.floor(waitMs))));
  }
  while (done < total) await new Promise<void>((resolveTick) => setTimeout(resolveTick, 5));
  if (failure !== undefined) throw failure;
  latencies.sort();
  return { p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), sent, maxLagMs };
}

/** Counters of INFO persistence that say whether an AOF rewrite ran. */
export async function aofRewrites(admin: Redis): Promise<{ rewrites: number; busy: boolean }> {
  const info = await admin.info('persistence');
  const field = (name: string): number => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1] ?? 0);
  return { rewrites: field('aof_rewrites'), busy: field('aof_rewrite_in_progress') + field('aof_rewrite_scheduled') > 0 };
}

/** Runs `measure` with no AOF rewrite in its window: one is run and finished first, automatic rewrites off during it. */
export async function withoutAofRewrites<T>(admin: Redis, measure: () => Promise<T>): Promise<T> {
  const [, percentage] = (await admin.config('GET', 'auto-aof-rewrite-percentage')) as [string, string];
  await admin.config('SET', 'auto-aof-rewrite-percentage', '0');
  try {
    while ((await aofRewrites(admin)).busy) await new Promise((resolveTick) => setTimeout(resolveTick, 50));
    const done = (await aofRewrites(admin)).rewrites;
    await admin.bgrewriteaof();
    const giveUpAt = Date.now() + 120_000;
    for (let state = await aofRewrites(admin); state.busy || state.rewrites === done; state = await aofRewrites(admin)) {
      if (Date.now() > giveUpAt) throw new Error('BGREWRITEAOF did not finish within 120 s (INFO persistence: aof_rewrites unchanged)');
      await new Promise((resolveTick) => setTimeout(resolveTick, 50));
    }
    return await measure();
  } finally {
    await admin.config('SET', 'auto-aof-rewrite-percentage', percentage);
  }
}

/** Runs `measure` as Redis runs, and counts the AOF rewrites that finished or ran in its window. */
export async function countingAofRewrites<T>(admin: Redis, measure: () => Promise<T>): Promise<{ result: T; rewrites: number }> {
  const before = await aofRewrites(admin);
  const result = await measure();
  const after = await aofRewrites(admin);
  return { result, rewrites: after.rewrites - before.rewrites + (after.busy ? 1 : 0) };
}

/** The open loop twice: as Redis runs (AOF rewrites may fall in the window: counted), then with none in it. */
export interface HalfLoadResult {
  /** With no AOF rewrite in the window (`withoutAofRewrites`). */
  quiet: OpenLoopResult;
  /** As configured (auto rewrite on), and how many rewrites finished or ran in the window. */
  asIs: OpenLoopResult & { rewrites: number };
}

/**
 * p99 at a fixed rate, with and without an AOF rewrite in the window. A rewrite forks Redis; on 2 shared cores the
 * child's copy and the parent's copy-on-write faults stall every client for up to hundreds of ms (measured
 * 2026-12-06: 69-299 ms p99 with rewrites in the window, 13-33 ms without). The writer that fills the AOF fastest
 * meets rewrites most often, so `asIs` is what a deployment with AOF sees now and then; `quiet` is the decider.
 */
export async function halfLoad(admin: Redis, ratePerS: number, call: (i: number) => Promise<unknown>): Promise<HalfLoadResult> {
  const asIs = await countingAofRewrites(admin, () => openLoop(ratePerS, call));
  const quiet = await withoutAofRewrites(admin, () => openLoop(ratePerS, call));
  return { quiet, asIs: { ...asIs.result, rewrites: asIs.rewrites } };
}
