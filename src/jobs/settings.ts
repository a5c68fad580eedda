/**
 * Settings of deferred jobs (from configuration: `JOBS_*`) and what follows
 * from them.
 */
import { MAX_RECORD_TTL_MS } from '../decider/index.js';

/** Timing and capacity of deferred jobs (from configuration: `JOBS_*`). */
export interface JobSettings {
  taskQueue: string;
  /** ms from submission until a job that was never admitted expires. */
  ttlMs: number;
  retryMinMs: number;
  retryMaxMs: number;
  /** Most unfinished jobs per tenant. */
  maxQueuedPerTenant: number;
}

/** The decider remembers a job's admission a day past its TTL, so every retry of the job is a replay. */
export function jobRecordTtlMs(ttlMs: number): number {
  return Math.min(MAX_RECORD_TTL_MS, ttlMs + 86_400_000);
}
