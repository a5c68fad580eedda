/**
 * Deferring an operation through the `Deferrer` port, with the port's failures
 * turned into outcomes the edge answers (202, 429, 503). Knows nothing of
 * GraphQL: the edge passes the query text, the variables and the price.
 */
import {
  CapacityError,
  DependencyError,
  OverloadedError,
  type EventId,
  type KeyId,
  type LimitId,
  type PlanId,
  type TenantId,
} from '../shared/index.js';
import type { DeferInput, DeferredJob, Deferrer } from './ports.js';

/** What a deferred job of an operation is made of: a defer without its limit, or the resubmission of a retry. */
export type DeferSubmission = Omit<DeferInput, 'limitId' | 'retryAfterMs'>;

/** The operation and its caller, as the edge knows them. */
export interface DeferSubmissionInput {
  tenant: TenantId;
  keyId: KeyId;
  planId: PlanId;
  /** The request id (from the Idempotency-Key when given): a retry names the same job. */
  requestId: EventId;
  operationName: string | undefined;
  query: string;
  variables: Record<string, unknown>;
  /** Requested cost in units. */
  cost: number;
  /** The request asked for a webhook notice when its job finishes (`Tollgate-Notify: webhook`). */
  isNotifyRequested: boolean;
}

/** The submission of one operation (for a defer, and for restarting its job on a retry). */
export function deferSubmission(input: DeferSubmissionInput): DeferSubmission {
  return {
    tenant: input.tenant,
    keyId: input.keyId,
    planId: input.planId,
    requestId: input.requestId,
    operationName: input.operationName,
    query: input.query,
    variables: input.variables,
    cost: input.cost,
    ...(input.isNotifyRequested ? { notifyOnFinish: true } : {}),
  };
}

/** The code of a failure as logged: our stable code, or `UNKNOWN` for anything else. */
export type DeferFailureCode = DependencyError['code'] | 'UNKNOWN';

/**
 * How a defer ended. `queue-full`: the tenant may not queue more jobs (the client
 * waits and retries). `unavailable`: the job could not be recorded or started,
 * so nothing runs later and the client must retry (with the same Idempotency-Key).
 * `overloaded`: this instance's deferral lane is full; nothing was recorded, the client retries shortly.
 */
export type DeferOutcome =
  | { kind: 'deferred'; job: DeferredJob }
  | { kind: 'queue-full'; code: CapacityError['code'] }
  | { kind: 'overloaded' }
  | { kind: 'unavailable'; code: DeferFailureCode };

const failureCode = (error: unknown): DeferFailureCode => (error instanceof DependencyError ? error.code : 'UNKNOWN');

/** Defers an operation that a `defer` limit refused; never throws for the port's failures. */
export async function deferOperation(input: {
  deferrer: Deferrer;
  submission: DeferSubmission;
  limitId: LimitId;
  /** When the limit may admit it, ms (null: unknown). */
  retryAfterMs: number | null;
}): Promise<DeferOutcome> {
  try {
    const job = await input.deferrer.defer({ ...input.submission, limitId: input.limitId, retryAfterMs: input.retryAfterMs });
    return { kind: 'deferred', job };
  } catch (error) {
    if (error instanceof CapacityError) return { kind: 'queue-full', code: error.code };
    if (error instanceof OverloadedError) return { kind: 'overloaded' };
    return { kind: 'unavailable', code: failureCode(error) };
  }
}

/**
 * What is known of a retried request's job. `unavailable`: whether the job exists
 * (or runs) cannot be told, so deciding the retry could run it beside its job. `overloaded`: this
 * instance's deferral lane is full; nothing was looked up.
 */
export type RetriedJobLookup =
  { kind: 'none' } | { kind: 'known'; job: DeferredJob } | { kind: 'unavailable'; code: DeferFailureCode } | { kind: 'overloaded' };

/**
 * The job already deferred for a retried request (same tenant and request id),
 * restarted from `submission` when it was recorded but is not running. `none`
 * when the deferrer cannot look jobs up.
 */
export async function findRetriedJob(input: { deferrer: Deferrer; submission: DeferSubmission }): Promise<RetriedJobLookup> {
  const { deferrer, submission } = input;
  if (deferrer.find === undefined) return { kind: 'none' };
  try {
    const job = await deferrer.find({ tenant: submission.tenant, requestId: submission.requestId, resubmit: submission });
    return job === undefined ? { kind: 'none' } : { kind: 'known', job };
  } catch (error) {
    if (error instanceof OverloadedError) return { kind: 'overloaded' };
    return { kind: 'unavailable', code: failureCode(error) };
  }
}
