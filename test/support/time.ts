/**
 * Time in tests: the calendar month every plan in the tests uses, the start of
 * its current period, and a pause. A test waits for a condition with
 * `waitFor` (poll.ts), never for a fixed time to pass; `sleep` is for pacing
 * load and for giving a process a moment on purpose.
 */
import type { PeriodSpec } from '../../src/decider/index.js';

/** A calendar month starting on the 1st, in UTC. */
export const MONTH = { unit: 'month', anchorDay: 1, timeZone: 'UTC' } as const satisfies PeriodSpec;

/** Start of the UTC calendar month holding `nowMs`. */
export function monthStartMs(nowMs: number): number {
  const date = new Date(nowMs);
  return Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1);
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
