/**
 * Waiting for something another process or a workflow does: poll a probe
 * until it yields a value, or fail naming what never came. Never a fixed sleep
 * followed by an assertion.
 */
import { sleep } from './time.js';

export interface PollOptions {
  /** Give up after this long. @default 60_000 */
  timeoutMs?: number;
  /** Pause between two probes. @default 100 */
  intervalMs?: number;
}

/** What a probe yields while the awaited thing is not there yet. */
type NotYet = undefined | null | false;

/**
 * Calls `probe` until it yields something other than `undefined`, `null` or
 * `false`, and returns that. The probe runs at least once, however short the timeout.
 * @throws Error `timed out after <ms> ms waiting for <what>` (the last probe's error, if it threw, as the cause)
 */
export async function waitFor<T>(what: string, probe: () => T | NotYet | Promise<T | NotYet>, options: PollOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const intervalMs = options.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}
