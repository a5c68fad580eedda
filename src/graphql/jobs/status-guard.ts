/**
 * What keeps `GET /jobs/<id>` cheap under polling (it is not metered: a
 * client waiting for its job should not pay for asking):
 * - `KeyRateLimiter`: a token bucket per API key in this process
 *   (`API_JOB_STATUS_PER_SECOND`, burst twice that); a poll over it is
 *   answered 429 with Retry-After, without a DynamoDB read. Per instance: N
 *   instances allow N times the rate, which bounds DynamoDB reads per
 *   instance, the point of it.
 * - `FinishedJobCache`: finished jobs never change again, so their view is
 *   kept for a while and served without a read; unfinished ones are always read.
 * Both are bounded in size (oldest entries go first). Pure apart from the clock.
 */
import type { Clock } from '../../shared/index.js';
import type { JobView } from './status.js';

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

  /** Takes one token of `key`'s bucket, or says how long until one is there. */
  take(key: string): RateCheck {
    const nowMs = this.options.clock.nowMs();
    const seen = this.buckets.get(key);
    // a clock that went back refills nothing
    const elapsedMs = seen === undefined ? 0 : Math.max(0, nowMs - seen.atMs);
    const tokens = seen === undefined ? this.burst : Math.min(this.burst, seen.tokens + (elapsedMs * this.options.perSecond) / 1_000);
    // re-inserted on every call, so the map's order is least recently seen first
    this.buckets.delete(key);
    if (tokens < 1) {
      this.buckets.set(key, { tokens, atMs: nowMs });
      return { isAllowed: false, retryAfterMs: Math.ceil(((1 - tokens) * 1_000) / this.options.perSecond) };
    }
    this.buckets.set(key, { tokens: tokens - 1, atMs: nowMs });
    if (this.buckets.size > this.maxKeys) {
      const oldest = this.buckets.keys().next();
      if (oldest.done !== true) this.buckets.delete(oldest.value);
    }
    return { isAllowed: true };
  }

  /** Keys tracked now. */
  get size(): number {
    return this.buckets.size;
  }
}

const FINISHED: readonly JobView['status'][] = ['succeeded', 'failed', 'expired'];

export interface FinishedJobCacheOptions {
  /** How long a finished job's view is served without a read, ms. @default 300 000 */
  ttlMs?: number;
  /** Most jobs kept; the oldest kept is dropped first. @default 10 000 */
  maxJobs?: number;
  clock: Clock;
}

/** Views of finished jobs, by tenant and job id (see the file header). */
export class FinishedJobCache {
  private readonly jobs = new Map<string, { view: JobView; untilMs: number }>();
  private readonly ttlMs: number;
  private readonly maxJobs: number;

  constructor(private readonly options: FinishedJobCacheOptions) {
    this.ttlMs = options.ttlMs ?? 300_000;
    this.maxJobs = options.maxJobs ?? 10_000;
  }

  get(tenant: string, jobId: string): JobView | undefined {
    const key = `${tenant}\n${jobId}`;
    const kept = this.jobs.get(key);
    if (kept === undefined) return undefined;
    if (this.options.clock.nowMs() >= kept.untilMs) {
      this.jobs.delete(key);
      return undefined;
    }
    return kept.view;
  }

  /** Keeps the view if the job is finished (an unfinished one may change: never kept). */
  offer(tenant: string, view: JobView): void {
    if (!FINISHED.includes(view.status)) return;
    const key = `${tenant}\n${view.id}`;
    this.jobs.delete(key);
    this.jobs.set(key, { view, untilMs: this.options.clock.nowMs() + this.ttlMs });
    if (this.jobs.size > this.maxJobs) {
      const oldest = this.jobs.keys().next();
      if (oldest.done !== true) this.jobs.delete(oldest.value);
    }
  }

  get size(): number {
    return this.jobs.size;
  }
}
