/**
 * `FinishedJobCache` keeps `GET /jobs/<id>` cheap under polling: finished jobs
 * never change again, so their view is kept for a while and served without a
 * DynamoDB read; unfinished ones are always read. Bounded in size (oldest
 * entries go first). Pure apart from the clock. (The per-key rate limit on the
 * same route is the edge's `KeyRateLimiter`.)
 */ import type { Clock } from '../shared/index.js';
import type { JobView } from './view.js';

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
