/**
 * Activities of deferred (202) jobs. Each is idempotent under the job id and
 * the request id: the decider dedupes the admission by request id (a retried
 * admit after a crash is a replay, never a second charge), settle is
 * idempotent per request id, the result is stored once, and finishing a job
 * twice changes nothing.
 *
 * Running the operation needs the GraphQL schema, which lives at the edge
 * (`src/graphql`, which this folder never imports): it is behind the jobs'
 * `JobExecutor` port, implemented there.
 */
import { Context } from '@temporalio/activity';
import type { DecideInput, Decider, Decision } from '../../decider/index.js';
import type { AccountStore } from '../../billing/index.js';
import {
  InvariantError,
  NotFoundError,
  parseEventId,
  parseKeyId,
  parsePlanId,
  parseTenantId,
  systemClock,
  type Clock,
  type KeyId,
  type PlanId,
  type TenantId,
} from '../../shared/index.js';
import { MAX_RESULT_CHARS, parseJobId, type DynamoJobStore, type JobError, type JobExecutor, type JobPolicy } from '../../jobs/index.js';
import { asActivity } from './errors.js';
import { postSignedWebhook } from './webhook.js';

export interface JobActivityDeps {
  decider: Decider;
  store: DynamoJobStore;
  executor: JobExecutor;
  /** Tenants' webhook settings, for finish notices. Without it a notice is recorded as skipped. */
  accounts?: AccountStore;
  /** Timeout of one webhook POST, ms. @default 10000 */
  webhookTimeoutMs?: number;
  /** @default systemClock */
  clock?: Clock;
}

/** Identity of a job in every activity input (re-validated on arrival). */
export interface JobRef {
  jobId: string;
  tenant: string;
  keyId: string;
  planId: string;
  requestId: string;
  operationName: string | null;
}

export interface AdmitJobInput extends JobRef {
  cost: number;
  /** How long the decider remembers the admission (covers every retry of this job). */
  recordTtlMs: number;
}

export type JobAdmission =
  { kind: 'admitted'; decidedAtMs: number } | { kind: 'wait'; retryAfterMs: number | null } | { kind: 'never'; errorCode: string };

export interface ExecuteJobInput extends JobRef {
  cost: number;
  query: string;
  variables: Record<string, unknown>;
}

export interface ExecuteJobResult {
  actualCost: number;
  status: 'succeeded' | 'failed';
  errorCode: string | null;
}

export interface SettleJobInput extends AdmitJobInput {
  actualCost: number;
  decidedAtMs: number;
}

export interface FinishJobInput {
  jobId: string;
  tenant: string;
  status: 'succeeded' | 'failed' | 'expired';
  errorCode: string | null;
}

const operationOf = (ref: JobRef): string => ref.operationName ?? 'anonymous';

/** A run failed when it returned no data; its code is the first error's (or EXECUTION_FAILED). */
function outcomeOf(result: unknown): { status: 'succeeded' | 'failed'; errorCode: string | null } {
  const shaped = result as { data?: unknown; errors?: JobError[] } | null;
  if (shaped !== null && shaped.data !== null && shaped.data !== undefined) return { status: 'succeeded', errorCode: null };
  return { status: 'failed', errorCode: shaped?.errors?.[0]?.code ?? 'EXECUTION_FAILED' };
}

function parseRef(ref: JobRef): { jobId: string; tenant: TenantId; keyId: KeyId; planId: PlanId } {
  return { jobId: parseJobId(ref.jobId), tenant: parseTenantId(ref.tenant), keyId: parseKeyId(ref.keyId), planId: parsePlanId(ref.planId) };
}

/** The decider's input for a job: its original request id, never deferrable again (decide and settle share it). */
function jobDecideInput(
  ref: ReturnType<typeof parseRef>,
  policy: JobPolicy,
  input: JobRef & { requestId: string; cost: number; recordTtlMs?: number },
): DecideInput {
  return {
    tenant: ref.tenant,
    keyId: ref.keyId,
    requestId: parseEventId(input.requestId),
    operation: operationOf(input),
    cost: input.cost,
    limits: policy.limits,
    billingPeriod: policy.billingPeriod,
    policyVersion: policy.policyVersion,
    isDeferrable: false,
    ...(input.recordTtlMs === undefined ? {} : { recordTtlMs: input.recordTtlMs }),
    ...(policy.subShards === undefined ? {} : { subShards: policy.subShards }),
  };
}

/** What a decision means for a waiting job: run it now, wait (and when), or never (the job ends). */
function admissionOf(decision: Decision): JobAdmission {
  switch (decision.kind) {
    case 'allowed':
    case 'warned':
      return { kind: 'admitted', decidedAtMs: decision.nowMs };
    case 'degraded':
      return decision.isAdmitted
        ? { kind: 'admitted', decidedAtMs: decision.nowMs }
        : { kind: 'wait', retryAfterMs: decision.retryAfterMs };
    case 'denied':
      return decision.retryAfterMs === null
        ? { kind: 'never', errorCode: 'COST_ABOVE_LIMIT' }
        : { kind: 'wait', retryAfterMs: decision.retryAfterMs };
    case 'deferred':
      return { kind: 'wait', retryAfterMs: decision.retryAfterMs };
  }
}

/** Activities of the `job/<tenant>/<jobId>` workflow. */
export function createJobActivities(deps: JobActivityDeps) {
  return { ...createJobRunActivities(deps), ...createJobEndActivities(deps) };
}

/** Admission, the run and the settlement of a job. */
function createJobRunActivities(deps: JobActivityDeps) {
  const clock = deps.clock ?? systemClock;
  return {
    /**
     * Asks the decider to admit the job as a non-deferrable request (its
     * `defer` limits act as `hard`), under the original request id. Admitted:
     * the job is marked running.
     */
    async admitDeferredJob(input: AdmitJobInput): Promise<JobAdmission> {
      return asActivity(async () => {
        const ref = parseRef(input);
        const policy = deps.executor.policyOf(ref);
        if (policy === undefined) return { kind: 'never', errorCode: 'PLAN_UNAVAILABLE' };
        const decision = await deps.decider.decide(jobDecideInput(ref, policy, input));
        const admission = admissionOf(decision);
        if (admission.kind === 'admitted') await deps.store.markRunning({ tenant: ref.tenant, jobId: ref.jobId, nowMs: clock.nowMs() });
        return admission;
      });
    },

    /**
     * Runs the operation once and stores its result. A retry after the result
     * was stored does not run it again; a crash between the run and the store
     * runs it again (the one at-least-once window).
     */
    async executeDeferredJob(input: ExecuteJobInput): Promise<ExecuteJobResult> {
      return asActivity(async () => {
        const ref = parseRef(input);
        const stored = await deps.store.get(ref.tenant, ref.jobId);
        if (stored !== undefined && stored.actualCost !== null) return { actualCost: stored.actualCost, ...outcomeOf(stored.result) };
        // a heartbeat every few seconds while the operation runs (the workflow's heartbeat timeout is 30 s)
        const context = Context.current();
        context.heartbeat();
        const beating = setInterval(() => context.heartbeat(), 5_000);
        let execution: Awaited<ReturnType<JobExecutor['execute']>>;
        try {
          execution = await deps.executor.execute({
            ...ref,
            query: input.query,
            variables: input.variables,
            operationName: input.operationName,
            cost: input.cost,
          });
        } finally {
          clearInterval(beating);
        }
        context.heartbeat();
        let result: unknown = execution.result;
        if (JSON.stringify(result).length > MAX_RESULT_CHARS) {
          result = {
            data: null,
            errors: [{ message: `the result is larger than ${MAX_RESULT_CHARS} characters and was not stored`, code: 'RESULT_TOO_LARGE' }],
          };
        }
        const kept = await deps.store.storeResult({
          tenant: ref.tenant,
          jobId: ref.jobId,
          result,
          actualCost: execution.actualCost,
          nowMs: clock.nowMs(),
        });
        return { actualCost: kept.actualCost, ...outcomeOf(kept.result) };
      });
    },

    /** Settles the admitted job with its actual cost (idempotent per request id). */
    async settleDeferredJob(input: SettleJobInput): Promise<{ status: string; refund: number }> {
      return asActivity(async () => {
        const ref = parseRef(input);
        const policy = deps.executor.policyOf(ref);
        if (policy === undefined) return { status: 'unknown', refund: 0 };
        const settled = await deps.decider.settle({
          ...jobDecideInput(ref, policy, input),
          actual: input.actualCost,
          decidedAtMs: input.decidedAtMs,
        });
        return { status: settled.status, refund: settled.refund };
      });
    },
  };
}

/** The end of a job: its final status and its finish notice. */
function createJobEndActivities(deps: JobActivityDeps) {
  const clock = deps.clock ?? systemClock;
  return {
    /** Writes the final status and frees the job's place in the tenant's queue (once). */
    async finishDeferredJob(input: FinishJobInput): Promise<{ isChanged: boolean }> {
      return asActivity(async () => {
        const isChanged = await deps.store.finish({
          tenant: parseTenantId(input.tenant),
          jobId: parseJobId(input.jobId),
          status: input.status,
          errorCode: input.errorCode,
          nowMs: clock.nowMs(),
        });
        return { isChanged };
      });
    },

    /**
     * Sends the tenant's webhook a signed `job.finished.v1` notice of a finished
     * job, once: the job record says when it went out (or that no webhook is
     * configured), and a retry after that sends nothing. A crash between an
     * accepted POST and the record sends it again with the same
     * `Idempotency-Key` (receivers dedupe on it, as for warnings).
     * @throws DependencyError `DEPENDENCY_FAILED` when the webhook answers non-2xx or times out (retried)
     */
    async notifyJobFinished(input: { tenant: string; jobId: string }): Promise<{ notification: 'delivered' | 'skipped' }> {
      return asActivity(async () => {
        const tenant = parseTenantId(input.tenant);
        const jobId = parseJobId(input.jobId);
        const job = await deps.store.get(tenant, jobId);
        if (job === undefined) throw new NotFoundError(`job ${jobId} of ${tenant} does not exist`);
        if (job.notification !== null) return { notification: job.notification };
        if (job.status === 'queued' || job.status === 'running')
          throw new InvariantError(`job ${jobId} is not finished; no notice is sent`);
        const account = await deps.accounts?.get(tenant);
        if (account?.webhookUrl === undefined || account.webhookSecret === undefined) {
          await deps.store.markNotified({ tenant, jobId, notification: 'skipped', nowMs: clock.nowMs() });
          return { notification: 'skipped' };
        }
        const idempotencyKey = `job-${tenant}-${jobId}-finished`;
        const body = JSON.stringify({
          type: 'job.finished.v1',
          id: idempotencyKey,
          tenant,
          jobId,
          status: job.status,
          actualCost: job.actualCost,
          errorCode: job.errorCode,
          finishedAtMs: job.finishedAtMs,
          location: `/jobs/${jobId}`,
        });
        await postSignedWebhook({
          url: account.webhookUrl,
          secret: account.webhookSecret,
          idempotencyKey,
          body,
          timeoutMs: deps.webhookTimeoutMs ?? 10_000,
          clock,
          what: `job webhook of ${tenant}`,
        });
        await deps.store.markNotified({ tenant, jobId, notification: 'delivered', nowMs: clock.nowMs() });
        return { notification: 'delivered' };
      });
    },
  };
}

export type JobActivities = ReturnType<typeof createJobActivities>;
