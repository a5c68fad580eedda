/**
 * runDeferredJob (`job/<tenant>/<jobId>`): a deferred (202) operation. It asks
 * the decider to admit the job (the same request id, not deferrable again);
 * while refused it waits `retryAfterMs` (clamped to [retryMinMs, retryMaxMs];
 * doubling from retryMinMs when the limiter gives no time) or until the
 * `wake` signal (a quota reset); once admitted it runs the operation, settles
 * the actual cost and stores the result. A job still waiting at its deadline
 * ends `expired` and is never charged: the TTL is checked before every
 * admission, and nothing is taken before one.
 *
 * Deterministic: time is the workflow clock, waits are durable timers. Long
 * waits continue as new when Temporal suggests it, carrying the attempt count.
 */
import {
  ActivityFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  defineSignal,
  log,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { ExecuteJobResult, JobActivities, JobAdmission } from '../activities/index.js';

const NON_RETRYABLE = ['INVALID_ID', 'INVALID_INPUT', 'CONFIG_INVALID', 'NOT_FOUND', 'CONFLICT', 'INVARIANT_VIOLATED'];

// Decisions, settlements and DynamoDB writes: short, retried until they succeed (each is idempotent).
const { admitDeferredJob, settleDeferredJob, finishDeferredJob } = proxyActivities<JobActivities>({
  startToCloseTimeout: '10 seconds',
  retry: {
    initialInterval: '200 milliseconds',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    nonRetryableErrorTypes: NON_RETRYABLE,
  },
});

// The run itself: the operation may take a while; a few attempts (the stored result stops a re-run).
// It heartbeats while it runs, so an attempt whose task never reached a worker's code (a poll answer lost
// on the way) is retried after the heartbeat timeout, not after the whole start-to-close timeout.
const { executeDeferredJob } = proxyActivities<JobActivities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '30 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 5,
    nonRetryableErrorTypes: NON_RETRYABLE,
  },
});

// The finish notice: the tenant's webhook may be down for a while; bounded retries, then the job stays finished
// and the notice is logged as lost (its record keeps no `notification`).
const { notifyJobFinished } = proxyActivities<JobActivities>({
  startToCloseTimeout: '30 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 10,
    nonRetryableErrorTypes: NON_RETRYABLE,
  },
});

/** Wakes a waiting job now (a quota reset): it asks for admission again at once. */
export const wakeSignal = defineSignal('wake');

export interface DeferredJobInput {
  jobId: string;
  tenant: string;
  keyId: string;
  planId: string;
  requestId: string;
  operationName: string | null;
  query: string;
  variables: Record<string, unknown>;
  /** Requested cost in units. */
  cost: number;
  /** Epoch ms of the submission; the job expires at submittedAtMs + ttlMs. */
  submittedAtMs: number;
  ttlMs: number;
  retryMinMs: number;
  retryMaxMs: number;
  /** How long the decider remembers the admission (longer than the TTL). */
  recordTtlMs: number;
  /** Carried over continue-as-new. @default 0 */
  attempts?: number;
  /** Consecutive refusals without a retry time (backoff exponent). @default 0 */
  blindWaits?: number;
  /** Send the tenant's webhook a signed notice once the job is finished (`notifyJobFinished`). @default false */
  notifyOnFinish?: boolean;
}

export interface DeferredJobResult {
  status: 'succeeded' | 'failed' | 'expired';
  /** Admission attempts (decider calls). */
  attempts: number;
  /** Units charged (null: nothing was charged). */
  actualCost: number | null;
  errorCode: string | null;
}

/** The wait before the next admission attempt, in ms. Pure. */
export function nextWaitMs(input: { retryAfterMs: number | null; blindWaits: number; retryMinMs: number; retryMaxMs: number }): number {
  const wanted = input.retryAfterMs ?? input.retryMinMs * 2 ** Math.min(input.blindWaits, 30);
  return Math.min(input.retryMaxMs, Math.max(input.retryMinMs, wanted));
}

/** The job workflow (see the file header). */
export async function runDeferredJob(input: DeferredJobInput): Promise<DeferredJobResult> {
  // Histories recorded before finish notices existed carry no notifyOnFinish, so they take no new step on replay.
  const finish = async (result: DeferredJobResult): Promise<DeferredJobResult> => {
    await finishDeferredJob({ jobId: input.jobId, tenant: input.tenant, status: result.status, errorCode: result.errorCode });
    if (input.notifyOnFinish === true) {
      try {
        await notifyJobFinished({ jobId: input.jobId, tenant: input.tenant });
      } catch (error) {
        if (!(error instanceof ActivityFailure)) throw error;
        log.error('deferred job finish notice not delivered', { jobId: input.jobId, cause: error.cause?.message });
      }
    }
    return result;
  };
  let isWoken = false;
  setHandler(wakeSignal, () => {
    isWoken = true;
  });
  const ref = {
    jobId: input.jobId,
    tenant: input.tenant,
    keyId: input.keyId,
    planId: input.planId,
    requestId: input.requestId,
    operationName: input.operationName,
  };
  const deadlineMs = input.submittedAtMs + input.ttlMs;
  let attempts = input.attempts ?? 0;
  let blindWaits = input.blindWaits ?? 0;
  let decidedAtMs: number;
  for (;;) {
    if (Date.now() >= deadlineMs) {
      return finish({ status: 'expired', attempts, actualCost: null, errorCode: 'JOB_EXPIRED' });
    }
    isWoken = false;
    attempts += 1;
    let admission: JobAdmission;
    try {
      admission = await admitDeferredJob({ ...ref, cost: input.cost, recordTtlMs: input.recordTtlMs });
    } catch (error) {
      // Only a non-retryable failure gets here (bad input, broken invariant): nothing was taken.
      if (!(error instanceof ActivityFailure)) throw error;
      log.error('deferred job admission failed', { jobId: input.jobId, cause: error.cause?.message });
      admission = { kind: 'never', errorCode: 'ADMISSION_FAILED' };
    }
    if (admission.kind === 'admitted') {
      decidedAtMs = admission.decidedAtMs;
      break;
    }
    if (admission.kind === 'never') {
      return finish({ status: 'failed', attempts, actualCost: null, errorCode: admission.errorCode });
    }
    const waitMs = nextWaitMs({
      retryAfterMs: admission.retryAfterMs,
      blindWaits,
      retryMinMs: input.retryMinMs,
      retryMaxMs: input.retryMaxMs,
    });
    blindWaits = admission.retryAfterMs === null ? blindWaits + 1 : 0;
    // Never sleep past the deadline: the job expires on time even with a long retry.
    await condition(() => isWoken, Math.max(1, Math.min(waitMs, deadlineMs - Date.now())));
    if (workflowInfo().continueAsNewSuggested) {
      await condition(allHandlersFinished);
      return continueAsNew<typeof runDeferredJob>({ ...input, attempts, blindWaits });
    }
  }
  let executed: ExecuteJobResult;
  try {
    executed = await executeDeferredJob({ ...ref, cost: input.cost, query: input.query, variables: input.variables });
  } catch (error) {
    // The run failed for good (no result stored): the job fails, the requested cost stays reserved
    // (it was admitted and may have had effects), and its queue place is freed.
    if (!(error instanceof ActivityFailure)) throw error;
    log.error('deferred job execution failed', { jobId: input.jobId, cause: error.cause?.message });
    return finish({ status: 'failed', attempts, actualCost: input.cost, errorCode: 'EXECUTION_FAILED' });
  }
  try {
    await settleDeferredJob({ ...ref, cost: input.cost, recordTtlMs: input.recordTtlMs, actualCost: executed.actualCost, decidedAtMs });
  } catch (error) {
    // Non-retryable only: the requested cost stays charged; the result is still the job's.
    if (!(error instanceof ActivityFailure)) throw error;
    log.error('deferred job settlement failed; the requested cost stays charged', { jobId: input.jobId, cause: error.cause?.message });
  }
  return finish({ status: executed.status, attempts, actualCost: executed.actualCost, errorCode: executed.errorCode });
}
