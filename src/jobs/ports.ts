/**
 * The ports of deferred jobs. The edge (`src/graphql`) implements `JobExecutor`
 * (it owns the schema a job runs against); `src/workflows` implements `Deferrer`
 * (a `job/<tenant>/<jobId>` workflow); `DynamoJobStore` implements `JobReader`.
 */
import type { LimitSpec, PeriodSpec } from '../decider/index.js';
import type { EventId, KeyId, LimitId, PlanId, TenantId } from '../shared/index.js';
import type { JobRecord, JobStatus } from './record.js';

/** Port: reads a tenant's job (DynamoJobStore implements it). */
export interface JobReader {
  get(tenant: TenantId, jobId: string): Promise<JobRecord | undefined>;
}

/** The limits a job is decided against (the plan as it is now, not at submission). */
export interface JobPolicy {
  limits: LimitSpec[];
  billingPeriod: PeriodSpec;
  policyVersion: number;
  /** Whale plans: the sub-shard count the plan splits its limits over. */
  subShards?: number;
}

/** A GraphQL error as stored with a job: message and stable code only. */
export interface JobError {
  message: string;
  code: string | null;
}

/** What a run returned, JSON-safe, and its measured cost. */
export interface JobExecution {
  result: { data: unknown; errors?: JobError[] };
  /** Actual cost in integer units, measured from the result like the plugin does. */
  actualCost: number;
}

/** Port: runs a job's operation in-process against the API's schema with the tenant's context. */
export interface JobExecutor {
  /** The policy of the job's plan; undefined when the plan no longer exists. */
  policyOf(input: { tenant: TenantId; keyId: KeyId; planId: PlanId }): JobPolicy | undefined;
  /** Runs the operation. Errors of the operation are part of the result, not thrown. */
  execute(input: JobExecutionInput): Promise<JobExecution>;
}

/** What a job's operation runs with. */
export interface JobExecutionInput {
  tenant: TenantId;
  keyId: KeyId;
  planId: PlanId;
  query: string;
  variables: Record<string, unknown>;
  operationName: string | null;
  /** The requested cost: what is charged when the actual cost cannot be measured. */
  cost: number;
}

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
  status: JobStatus;
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
  find?(input: {
    tenant: TenantId;
    requestId: EventId;
    resubmit?: Omit<DeferInput, 'limitId' | 'retryAfterMs'>;
  }): Promise<DeferredJob | undefined>;
}
