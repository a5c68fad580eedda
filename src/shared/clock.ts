/**
 * Wall-clock time for code outside the decider. The decider's only clock is
 * Redis `TIME`; this one is for logs, timeouts and local backstops.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  nowMs(): number;
}

/** The process clock. */
export const systemClock: Clock = { nowMs: () => Date.now() };
