/**
 * `TemporalDeferrer`: the durable `Deferrer`. A deferred operation becomes a
 * job recorded `queued` in DynamoDB (counted against the tenant's cap) and a
 * `job/<tenant>/<jobId>` workflow that runs it once its limit admits it.
 * Deferring the same request again (same tenant and request id) returns the
 * same job.
 */
import type { Client } from '@temporalio/client';
import { systemClock, type Clock, type EventId, type TenantId } from '../../shared/index.js';
import { isDeferredJobRunning, submitDeferredJob, type DynamoJobStore, type JobSettings } from '../../workflows/index.js';
import { deferredJobId, type DeferInput, type DeferredJob, type Deferrer } from '../deferrer.js';

export interface TemporalDeferrerOptions {
  client: Client;
  store: DynamoJobStore;
  /** TTL, retry bounds, per-tenant cap and task queue (`JOBS_*`). */
  settings: JobSettings;
  /** @default systemClock */
  clock?: Clock;
}

export class TemporalDeferrer implements Deferrer {
  private readonly clock: Clock;

  constructor(private readonly options: TemporalDeferrerOptions) {
    this.clock = options.clock ?? systemClock;
  }

  /**
   * @throws CapacityError `JOB_QUEUE_FULL` when the tenant has `maxQueuedPerTenant` unfinished jobs
   * @throws DependencyError `DYNAMODB_UNAVAILABLE` / `TEMPORAL_UNAVAILABLE`
   */
  async defer(input: DeferInput): Promise<DeferredJob> {
    const id = deferredJobId(input.tenant, input.requestId);
    const { job } = await submitDeferredJob({
      client: this.options.client,
      store: this.options.store,
      settings: this.options.settings,
      job: {
        jobId: id,
        tenant: input.tenant,
        keyId: input.keyId,
        planId: input.planId,
        requestId: input.requestId,
        operationName: input.operationName ?? null,
        query: input.query,
        variables: { ...input.variables },
        cost: input.cost,
        nowMs: this.clock.nowMs(),
      },
    });
    const etaMs = job.status === 'queued' ? input.retryAfterMs : job.status === 'running' ? 0 : null;
    return { id, status: job.status, etaMs };
  }

  /**
   * The recorded job of this tenant and request id (a consistent read). An unfinished job whose
   * workflow is not running (a crash between recording and starting it, or a terminated workflow)
   * is reported as unknown, so the retry is decided and, deferred again, restarts it.
   */
  async find(input: { tenant: TenantId; requestId: EventId }): Promise<DeferredJob | undefined> {
    const id = deferredJobId(input.tenant, input.requestId);
    const job = await this.options.store.get(input.tenant, id);
    if (job === undefined) return undefined;
    const isUnfinished = job.status === 'queued' || job.status === 'running';
    if (isUnfinished && !(await isDeferredJobRunning(this.options.client, { tenant: input.tenant, jobId: id }))) return undefined;
    return { id, status: job.status, etaMs: job.status === 'running' ? 0 : null };
  }
}
