/**
 * Open-loop HTTP load at a fixed rate. Request i is due at start + i / rate whatever the answers do; each latency is
 * measured from the time the request was due, not from when it went out, so a server (or this generator) that
 * falls behind is charged the whole wait (no coordinated omission). The loop sleeps until the next request is due
 * and then sends every request that has come due: it never spins (the cores are shared with the servers under
 * test) and a timer firing late delays the sends, which the latencies then include.
 */
import { Agent, request as httpRequest } from 'node:http';

export interface OpenLoopInput {
  port: number;
  path: string;
  headers: Record<string, string>;
  body: string;
  ratePerS: number;
  durationMs: number;
}

export interface OpenLoopResult {
  p50Ms: number;
  p99Ms: number;
  sent: number;
  /** Answers other than 200, and requests that failed. */
  failures: number;
  /** The latest any request went out after it was due, ms (the generator's own lag). */
  maxSendLagMs: number;
  /** Every answered request's latency, ms, ascending (to pool runs: `pooledPercentiles`). */
  latenciesMs: number[];
}

/** p50 and p99 of several runs' latencies taken together. */
export function pooledPercentiles(runs: readonly OpenLoopResult[]): { p50Ms: number; p99Ms: number; sent: number } {
  const all = runs.flatMap((run) => run.latenciesMs).sort((a, b) => a - b);
  return { p50Ms: percentile(all, 50), p99Ms: percentile(all, 99), sent: runs.reduce((sum, run) => sum + run.sent, 0) };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/** Sends `ratePerS` requests a second for `durationMs`, keep-alive sockets, and waits for every answer. */
export async function openLoop(input: OpenLoopInput): Promise<OpenLoopResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const headers = { ...input.headers, 'content-length': String(Buffer.byteLength(input.body)) };
  const intervalMs = 1_000 / input.ratePerS;
  const total = Math.floor((input.durationMs / 1_000) * input.ratePerS);
  const latencies: number[] = [];
  const pending: Promise<void>[] = [];
  let failures = 0;
  let maxSendLagMs = 0;
  const send = (dueAt: number): Promise<void> =>
    new Promise((resolveOne) => {
      const req = httpRequest({ host: '127.0.0.1', port: input.port, path: input.path, method: 'POST', agent, headers }, (res) => {
        if (res.statusCode !== 200) failures += 1;
        res.resume();
        res.on('end', () => {
          latencies.push(performance.now() - dueAt);
          resolveOne();
        });
      });
      req.on('error', () => {
        failures += 1;
        resolveOne();
      });
      req.end(input.body);
    });
  const startedAt = performance.now();
  let sent = 0;
  while (sent < total) {
    const now = performance.now();
    for (let dueAt = startedAt + sent * intervalMs; sent < total && dueAt <= now; dueAt = startedAt + sent * intervalMs) {
      maxSendLagMs = Math.max(maxSendLagMs, now - dueAt);
      pending.push(send(dueAt));
      sent += 1;
    }
    const nextDueAt = startedAt + sent * intervalMs;
    if (sent < total) await new Promise((resolveSleep) => setTimeout(resolveSleep, Math.max(0, nextDueAt - performance.now())));
  }
  await Promise.all(pending);
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), sent, failures, maxSendLagMs, latenciesMs: latencies };
}
