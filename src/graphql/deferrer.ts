/**
 * The `Deferrer` port: where a `@deferrable` operation goes when a `defer`
 * limit is hit (DESIGN §2, 202). The durable implementation is
 * `TemporalDeferrer` (`jobs/temporal-deferrer.ts`: a `job/<tenant>/<jobId>`
 * workflow); `InMemoryDeferrer` only records jobs in this process and runs
 * nothing, for unit tests.
 */
import { createHash } from 'node:crypto';
import type { EventId, KeyId, LimitId, PlanId, TenantId } from '../shared/index.js';

export interface DeferInput {
  tenant: TenantId;
  keyId: KeyId;
  /** The caller's plan: the job is decided against this plan's limits when it runs. */
  planId: PlanId;
  /** The request id (from the Idempotency-Key when given): a retry defers the same job. */
  requestId: EventId;
  operationName: string | undefined;
  query: string;
  variables: Readonly<Record<string, unknown>>;
  /** Requested cost in units. */
  cost: number;
  /** The limit that deferred the operation and when it may fit (null: unknown). */
  limitId: LimitId;
  retryAfterMs: number | null;
  /** Send the tenant's webhook a signed notice when the job finishes (`Tollgate-Notify: webhook`). @default false */
  notifyOnFinish?: boolean;
}

export interface DeferredJob {
  /** Opaque, URL-safe, deterministic per (tenant, request id). */
  id: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'expired';
  /** Expected ms until it runs (null: unknown). */
  etaMs: number | null;
}

/** Port: accepts deferred operations. */
export interface Deferrer {
  /**
   * Records the job (idempotent per tenant and request id) and returns it.
   * @throws CapacityError `JOB_QUEUE_FULL` when the tenant may not queue more jobs (the plugin answers 429)
   * @throws DependencyError when the job could not be recorded (the plugin answers 429 with Retry-After)
   */
  defer(input: DeferInput): Promise<DeferredJob>;
  /**
   * The job already recorded for this tenant and request id, if any. The plugin asks before deciding an
   * Idempotency-Key retry of a deferrable operation, so a retry of a deferred request is answered with its
   * job and never admitted (and run) beside it. A recorded, unfinished job whose workflow is not running (its
   * start failed, e.g. Temporal was down, or it was terminated) is submitted again from `resubmit` (the
   * retried request: same Idempotency-Key, same operation), so the retry heals it.
   * @throws DependencyError when the jobs cannot be read or Temporal cannot tell whether the job runs (the
   *   plugin answers 503 `JOBS_UNAVAILABLE`: deciding could run the operation beside its job)
   */
  find?(input: { tenant: TenantId; requestId: EventId; resubmit?: Omit<DeferInput, 'limitId' | 'retryAfterMs'> }): Promise<DeferredJob | undefined>;
}

/** The job id of a deferred request: `j-` and 32 hex digits of sha256(tenant/requestId). */
export function deferredJobId(tenant: TenantId, requestId: EventId): string {
  return `j-${createHash('sha256').update(`${tenant}/${requestId}`).digest('hex').slice(0, 32)}`;
}

/** In-memory and non-durable: jobs live in this process only and are never run. */
export class InMemoryDeferrer implements Deferrer {
  readonly jobs = new Map<string, { job: DeferredJob; input: DeferInput }>();

  defer(input: DeferInput): Promise<DeferredJob> {
    const id = deferredJobId(input.tenant, input.requestId);
    const known = this.jobs.get(id);
    if (known !== undefined) return Promise.resolve(known.job);
    const job: DeferredJob = { id, status: 'queued', etaMs: input.retryAfterMs };
    this.jobs.set(id, { job, input });
    return Promise.resolve(job);
  }

  find(input: { tenant: TenantId; requestId: EventId }): Promise<DeferredJob | undefined> {
    return Promise.resolve(this.jobs.get(deferredJobId(input.tenant, input.requestId))?.job);
  }
}
