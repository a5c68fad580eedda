/**
 * A token bucket per key, in this process only (no Redis): for guards that
 * protect this instance's dependencies (job status reads, API key lookups),
 * not for the tenant limits, which the decider keeps. N instances allow N
 * times the rate. Bounded in keys (the least recently seen goes first).
 * Pure apart from the clock.
 */
import type { Clock } from '../shared/index.js';

export interface KeyRateLimiterOptions {
  /** Tokens added per second. */
  perSecond: number;
  /** Bucket size. @default 2 × perSecond */
  burst?: number;
  /** Most keys tracked; the least recently seen is dropped first. @default 100 000 */
  maxKeys?: number;
  clock: Clock;
}

export type RateCheck = { isAllowed: true } | { isAllowed: false; retryAfterMs: number };

/** A token bucket per key (see the file header). */
export class KeyRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; atMs: number }>();
  private readonly burst: number;
  private readonly maxKeys: number;

  constructor(private readonly options: KeyRateLimiterOptions) {
    if (!(options.perSecond > 0)) throw new RangeError('perSecond must be positive');
    this.burst = options.burst ?? 2 * options.perSecond;
    if (!(this.burst >= 1)) throw new RangeError('burst must be at least 1');
    this.maxKeys = options.maxKeys ?? 100_000;
  }

  /** Takes one token of `key`'s bucket, or says how long until one is there (and takes nothing). */
  take(key: string): RateCheck {
    return this.spend(key, 1);
  }

  /** Whether `key`'s bucket holds a token now, taking none. */
  check(key: string): RateCheck {
    return this.spend(key, 0);
  }

  private spend(key: string, cost: 0 | 1): RateCheck {
    const nowMs = this.options.clock.nowMs();
    const seen = this.buckets.get(key);
    // a clock that went back refills nothing
    const elapsedMs = seen === undefined ? 0 : Math.max(0, nowMs - seen.atMs);
    const tokens = seen === undefined ? this.burst : Math.min(this.burst, seen.tokens + (elapsedMs * this.options.perSecond) / 1_000);
    if (tokens < 1) {
      if (seen !== undefined) this.remember(key, { tokens, atMs: nowMs });
      return { isAllowed: false, retryAfterMs: Math.ceil(((1 - tokens) * 1_000) / this.options.perSecond) };
    }
    // a check of a key never spent leaves nothing behind
    if (cost === 1 || seen !== undefined) this.remember(key, { tokens: tokens - cost, atMs: nowMs });
    return { isAllowed: true };
  }

  /** Stores a bucket as the most recently seen (the map's order is least recently seen first). */
  private remember(key: string, bucket: { tokens: number; atMs: number }): void {
    this.buckets.delete(key);
    this.buckets.set(key, bucket);
    if (this.buckets.size > this.maxKeys) {
      const oldest = this.buckets.keys().next();
      if (oldest.done !== true) this.buckets.delete(oldest.value);
    }
  }

  /** Keys tracked now. */
  get size(): number {
    return this.buckets.size;
  }
}
