/**
 * Job ids of deferred requests, and `InMemoryDeferrer`: the `Deferrer` port
 * (`ports.ts`) in this process only, running nothing, for unit tests. The
 * durable implementation is `TemporalDeferrer` in `src/workflows`.
 */
import { createHash } from 'node:crypto';
import type { EventId, TenantId } from '../shared/index.js';
import type { DeferInput, DeferredJob, Deferrer } from './ports.js';

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
