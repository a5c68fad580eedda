/**
 * `TemporalDeferrer`: the durable `Deferrer`. A deferred operation becomes a
 * job recorded `queued` in DynamoDB (counted against the tenant's cap) and a
 * `job/<tenant>/<jobId>` workflow that runs it once its limit admits it.
 * Deferring the same request again (same tenant and request id) returns the
 * same job.
 */
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { DependencyError, isAppError, systemClock, type Clock, type EventId, type TenantId } from '../shared/index.js';
import { deferredJobId, type DeferInput, type DeferredJob, type Deferrer, type DynamoJobStore, type JobSettings } from '../jobs/index.js';
import { isDeferredJobRunning, submitDeferredJob } from './jobs.js';

export interface TemporalDeferrerOptions {
  client: Client;
  store: DynamoJobStore;
  /** TTL, retry bounds, per-tenant cap and task queue (`JOBS_*`). */
  settings: JobSettings;
  /** @default systemClock */
  clock?: Clock;
  /** Deadline of each Temporal call of a submission or lookup, ms (the API answers 503 past it). @default 3000 */
  temporalTimeoutMs?: number;
}

export class TemporalDeferrer implements Deferrer {
  private readonly clock: Clock;
  private readonly temporalTimeoutMs: number;

  constructor(private readonly options: TemporalDeferrerOptions) {
    this.clock = options.clock ?? systemClock;
    this.temporalTimeoutMs = options.temporalTimeoutMs ?? 3_000;
  }

  /**
   * @throws CapacityError `JOB_QUEUE_FULL` when the tenant has `maxQueuedPerTenant` unfinished jobs
   * @throws DependencyError `DYNAMODB_UNAVAILABLE` / `TEMPORAL_UNAVAILABLE` (also when Temporal does not
   *   answer within `temporalTimeoutMs`); the job may be recorded `queued` without a running workflow: a retry
   *   with the same Idempotency-Key starts it (see find)
   */
  async defer(input: DeferInput): Promise<DeferredJob> {
    return this.submit(input);
  }

  private async submit(input: Omit<DeferInput, 'limitId' | 'retryAfterMs'> & { retryAfterMs: number | null }): Promise<DeferredJob> {
    const id = deferredJobId(input.tenant, input.requestId);
    const { job } = await this.bounded(() =>
      submitDeferredJob({
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
          ...(input.notifyOnFinish === true ? { isNotifyRequested: true } : {}),
        },
      }),
    );
    const etaMs = job.status === 'queued' ? input.retryAfterMs : job.status === 'running' ? 0 : null;
    return { id, status: job.status, etaMs };
  }

  /**
   * The recorded job of this tenant and request id (a consistent read). An unfinished job whose
   * workflow is not running (a crash between recording and starting it, or a terminated workflow)
   * is reported as unknown, so the retry is decided and, deferred again, restarts it.
   */
  async find(input: {
    tenant: TenantId;
    requestId: EventId;
    resubmit?: Omit<DeferInput, 'limitId' | 'retryAfterMs'>;
  }): Promise<DeferredJob | undefined> {
    const id = deferredJobId(input.tenant, input.requestId);
    const job = await this.options.store.get(input.tenant, id);
    if (job === undefined) return undefined;
    const isUnfinished = job.status === 'queued' || job.status === 'running';
    if (isUnfinished && !(await this.bounded(() => isDeferredJobRunning(this.options.client, { tenant: input.tenant, jobId: id })))) {
      return input.resubmit === undefined ? undefined : this.submit({ ...input.resubmit, retryAfterMs: null });
    }
    return { id, status: job.status, etaMs: job.status === 'running' ? 0 : null };
  }

  /** Runs Temporal calls under a deadline, so an unreachable server is an error within `temporalTimeoutMs`, never a hang. */
  private async bounded<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await this.options.client.connection.withDeadline(Date.now() + this.temporalTimeoutMs, call);
    } catch (error) {
      if (isAppError(error) || error instanceof WorkflowExecutionAlreadyStartedError) throw error;
      throw new DependencyError('TEMPORAL_UNAVAILABLE', 'Temporal did not answer in time', { cause: error });
    }
  }
}
