/**
 * Where the decider's p99 at half load comes from (issue 16): `npx tsx bench/decider/tail.ts <port> <ratePerS>` runs
 * the bench's open loop (`load.ts`) at a fixed rate against the Redis on `port` and prints p50/p99/max and the 100 ms
 * windows holding the slowest requests. Whether those windows are few and long (a stall: AOF fsync, a GC pause, the
 * machine) or spread out (queueing) tells where the tail comes from. Redis' INFO persistence `aof_delayed_fsync` is
 * printed too (a write that waited for a slow fsync).
 */
import { Redis } from 'ioredis';
import { percentile, openLoop } from './load.js';
import { tollgateOn } from './sides.js';
import { UNIFORM } from './workloads.js';

const port = Number(process.argv[2]);
const rate = Number(process.argv[3] ?? 5_000);
const admin = new Redis({ port });
const side = await tollgateOn(port, UNIFORM);
const started = performance.now();
const samples: { at: number; ms: number }[] = [];
const delayed = async (): Promise<number> => Number(/aof_delayed_fsync:(\d+)/.exec(await admin.info('persistence'))?.[1] ?? 0);
try {
  const fsyncBefore = await delayed();
  const result = await openLoop(rate, async (i) => {
    const t0 = performance.now();
    await side.decideOnce(i);
    samples.push({ at: t0 - started, ms: performance.now() - t0 });
  });
  const sorted = samples.map((sample) => sample.ms).sort((a, b) => a - b);
  const windows = new Map<number, number>();
  for (const sample of samples) {
    const window = Math.floor(sample.at / 100);
    windows.set(window, Math.max(windows.get(window) ?? 0, sample.ms));
  }
  const p99 = percentile(sorted, 99);
  const slow = [...windows].filter(([, max]) => max >= p99).sort((a, b) => a[0] - b[0]);
  console.log(
    `rate ${rate}/s: scheduled p50 ${result.p50Ms.toFixed(2)} p99 ${result.p99Ms.toFixed(2)} ms (lag ≤ ${result.maxLagMs.toFixed(2)}); ` +
      `from send p50 ${percentile(sorted, 50).toFixed(2)} p99 ${p99.toFixed(2)} max ${(sorted.at(-1) ?? 0).toFixed(2)} ms; ` +
      `${slow.length} of ${windows.size} 100-ms windows hold a request ≥ p99: ${slow.map(([w, max]) => `${w / 10}s:${max.toFixed(0)}`).join(' ')}; ` +
      `aof_delayed_fsync +${(await delayed()) - fsyncBefore}`,
  );
} finally {
  side.client.disconnect();
  admin.disconnect();
}
