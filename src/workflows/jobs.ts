/**
 * Deferred (202) jobs on Temporal: submitting (record in DynamoDB, then start or
 * join the `job/<tenant>/<jobId>` workflow), restarting from the record,
 * sweeping the open-jobs index and waking. The worker that runs them is
 * `createJobsWorker` (`workers.ts`).
 */
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowIdConflictPolicy,
  WorkflowIdReusePolicy,
  WorkflowNotFoundError,
  type Client,
} from '@temporalio/client';
import { DependencyError, parseEventId, parseKeyId, parsePlanId, parseTenantId, type TenantId } from '../shared/index.js';
import {
  EMPTY_JOB_SWEEP_COUNTS,
  OPEN_JOB_SHARDS,
  jobRecordTtlMs,
  parseJobId,
  type DynamoJobStore,
  type JobRecord,
  type JobSettings,
  type JobSubmission,
  type JobSweepCounts,
  type JobSweepPosition,
  type OpenJob,
  type RestartOutcome,
} from '../jobs/index.js';
import { jobWorkflowId } from './ids.js';
import type { DeferredJobInput, runDeferredJob } from './workflows/index.js';

export interface SubmitJobInput {
  jobId: string;
  tenant: string;
  keyId: string;
  planId: string;
  requestId: string;
  operationName: string | null;
  query: string;
  variables: Record<string, unknown>;
  cost: number;
  nowMs: number;
  /** Send a signed notice to the tenant's webhook when the job finishes. @default false */
  isNotifyRequested?: boolean;
}

/**
 * Records the job as queued (counted against the tenant's cap) and starts its
 * workflow, or joins both when they exist: a resubmission of the same job id
 * (an Idempotency-Key retry, N concurrent requests) returns the same job and
 * starts nothing new. The workflow is started even when the record existed
 * (a crash between the two is healed by the next submit, or by the account
 * workflow's sweep: `restartDeferredJob`).
 * @throws CapacityError `JOB_QUEUE_FULL` when the tenant's queue is full (nothing recorded)
 * @throws DependencyError `DYNAMODB_UNAVAILABLE` / `TEMPORAL_UNAVAILABLE`
 */
export async function submitDeferredJob(input: {
  client: Client;
  store: DynamoJobStore;
  settings: JobSettings;
  job: SubmitJobInput;
}): Promise<{ job: JobRecord; isNew: boolean }> {
  const { job, settings } = input;
  const tenant: TenantId = parseTenantId(job.tenant);
  const jobId = parseJobId(job.jobId);
  parseKeyId(job.keyId);
  parsePlanId(job.planId);
  parseEventId(job.requestId);
  const submission: JobSubmission = { planId: job.planId, query: job.query, variables: job.variables };
  const recorded = await input.store.create({
    jobId,
    tenant,
    keyId: job.keyId,
    requestId: job.requestId,
    operationName: job.operationName,
    cost: job.cost,
    createdAtMs: job.nowMs,
    expiresAtMs: job.nowMs + settings.ttlMs,
    maxOpenJobs: settings.maxQueuedPerTenant,
    submission,
    ...(job.isNotifyRequested === true ? { isNotifyRequested: true } : {}),
  });
  if (recorded.job.status !== 'queued' && recorded.job.status !== 'running') return recorded;
  const started = await startJobWorkflow(input.client, settings, jobWorkflowInput(recorded.job, submission, settings));
  return started === 'completed' ? { job: (await input.store.get(tenant, jobId)) ?? recorded.job, isNew: false } : recorded;
}

/**
 * The workflow input of a recorded job: as first recorded (a resubmission cannot
 * change its TTL or turn the finish notice on or off), with this process's retry settings.
 */
function jobWorkflowInput(record: JobRecord, submission: JobSubmission, settings: JobSettings): DeferredJobInput {
  const submittedAtMs = record.createdAtMs;
  const ttlMs = record.expiresAtMs - submittedAtMs;
  return {
    jobId: record.jobId,
    tenant: record.tenant,
    keyId: record.keyId,
    planId: submission.planId,
    requestId: record.requestId,
    operationName: record.operationName,
    query: submission.query,
    variables: submission.variables,
    cost: record.cost,
    submittedAtMs,
    ttlMs,
    retryMinMs: settings.retryMinMs,
    retryMaxMs: settings.retryMaxMs,
    recordTtlMs: jobRecordTtlMs(ttlMs),
    ...(record.isNotifyRequested ? { notifyOnFinish: true } : {}),
  };
}

/**
 * Starts `job/<tenant>/<jobId>`, or joins the running one.
 * @returns `completed` when a run of this id already completed (it is never run again)
 * @throws DependencyError `TEMPORAL_UNAVAILABLE`
 */
async function startJobWorkflow(client: Client, settings: JobSettings, workflowInput: DeferredJobInput): Promise<'started' | 'completed'> {
  try {
    await client.workflow.start<typeof runDeferredJob>('runDeferredJob', {
      taskQueue: settings.taskQueue,
      workflowId: jobWorkflowId({ tenant: workflowInput.tenant, jobId: workflowInput.jobId }),
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
      // A job whose workflow failed, timed out or was terminated while its record is unfinished is
      // restarted by the next submit or sweep (its admission is a replay under the same request id, its
      // stored result is kept). A completed workflow is never run again: its record is finished, so the
      // submit returns before starting, and this policy refuses to reuse a completed id anyway.
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
      args: [workflowInput],
    });
    return 'started';
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) return 'completed';
    throw new DependencyError('TEMPORAL_UNAVAILABLE', 'Temporal did not start the deferred job', { cause: error });
  }
}

/**
 * Starts the workflow of a recorded, unfinished job from its record alone, as a
 * retry of its request would (the same id and policies: a running workflow is
 * joined, a completed one never runs again, an admission already made is a
 * replay): for jobs recorded while Temporal was unreachable whose client never
 * came back. Records without a kept submission cannot be restarted.
 * @throws DependencyError `DYNAMODB_UNAVAILABLE` / `TEMPORAL_UNAVAILABLE`
 */
export async function restartDeferredJob(input: {
  client: Client;
  store: DynamoJobStore;
  settings: JobSettings;
  tenant: string;
  jobId: string;
}): Promise<RestartOutcome> {
  const record = await input.store.get(parseTenantId(input.tenant), parseJobId(input.jobId));
  return record === undefined ? 'unknown' : restartFromRecord(input.client, input.settings, record);
}

async function restartFromRecord(client: Client, settings: JobSettings, record: JobRecord): Promise<RestartOutcome> {
  if (record.status !== 'queued' && record.status !== 'running') return 'finished';
  if (record.submission === null) return 'no-submission';
  return startJobWorkflow(client, settings, jobWorkflowInput(record, record.submission, settings));
}

/** Jobs of one sweep page checked at once. */
const SWEEP_CONCURRENCY = 8;

/**
 * One page of the sweep of unfinished jobs, across every tenant: the jobs of one
 * open-jobs shard created more than `graceMs` ago (younger ones may still be in
 * their submit), oldest first. A job whose workflow is not running is started
 * again from its record, as a retry of its request would start it (past its TTL
 * that run ends it expired, uncharged, and notifies). One that cannot be
 * restarted (its submission was too large to keep, or it was recorded before
 * submissions were kept) is finished once its TTL has passed, which frees its
 * place in the tenant's queue. Shards with nothing to sweep are skipped within
 * the page. Safe to repeat: every step is idempotent.
 * @returns the page's counts and where the sweep continues (null: every shard is done)
 * @throws DependencyError `DYNAMODB_UNAVAILABLE` / `TEMPORAL_UNAVAILABLE`
 */
export async function sweepOpenJobs(input: {
  client: Client;
  store: DynamoJobStore;
  settings: JobSettings;
  position: JobSweepPosition;
  nowMs: number;
  graceMs: number;
  pageSize: number;
  /** Called after each job (activities heartbeat here). */
  onJob?: () => void;
}): Promise<{ counts: JobSweepCounts; next: JobSweepPosition | null }> {
  const { after } = input.position;
  let { shard } = input.position;
  const beforeMs = input.nowMs - input.graceMs;
  let page = await input.store.listOpen({ shard, beforeMs, limit: input.pageSize, ...(after === null ? {} : { after }) });
  // empty shards cost no page of their own: an idle cycle is one activity
  while (page.jobs.length === 0 && page.next === null && shard + 1 < OPEN_JOB_SHARDS) {
    shard += 1;
    page = await input.store.listOpen({ shard, beforeMs, limit: input.pageSize });
  }
  const counts = { ...EMPTY_JOB_SWEEP_COUNTS, checked: page.jobs.length };
  const queue = [...page.jobs];
  const sweepOne = async (job: OpenJob): Promise<keyof JobSweepCounts> => {
    if (await isDeferredJobRunning(input.client, job)) return 'running';
    const record = await input.store.get(job.tenant, job.jobId);
    if (record === undefined) return 'finished';
    const outcome = await restartFromRecord(input.client, input.settings, record);
    if (outcome === 'started') return 'restarted';
    if (outcome === 'finished' || outcome === 'unknown') return 'finished';
    if (outcome === 'completed' || input.nowMs < record.expiresAtMs) return 'stranded';
    const isQueued = record.status === 'queued';
    const isEnded = await input.store.finish({
      tenant: record.tenant,
      jobId: record.jobId,
      status: isQueued ? 'expired' : 'failed',
      errorCode: isQueued ? 'JOB_EXPIRED' : 'JOB_LOST',
      nowMs: input.nowMs,
    });
    return isEnded ? 'ended' : 'finished';
  };
  const lanes = Array.from({ length: Math.min(SWEEP_CONCURRENCY, queue.length) }, async () => {
    for (let job = queue.shift(); job !== undefined; job = queue.shift()) {
      counts[await sweepOne(job)] += 1;
      input.onJob?.();
    }
  });
  await Promise.all(lanes);
  if (page.next !== null) return { counts, next: { shard, after: page.next } };
  return { counts, next: shard + 1 < OPEN_JOB_SHARDS ? { shard: shard + 1, after: null } : null };
}

/**
 * Whether the job's workflow is running. False when it does not exist or has closed (failed,
 * terminated, completed).
 * @throws DependencyError `TEMPORAL_UNAVAILABLE` when Temporal cannot tell (callers must not guess)
 */
export async function isDeferredJobRunning(client: Client, input: { tenant: string; jobId: string }): Promise<boolean> {
  try {
    const description = await client.workflow.getHandle(jobWorkflowId(input)).describe();
    return description.status.name === 'RUNNING';
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return false;
    throw new DependencyError('TEMPORAL_UNAVAILABLE', 'Temporal could not tell whether the deferred job runs', { cause: error });
  }
}

/**
 * Wakes a waiting job (e.g. after a quota reset): it asks for admission at once.
 * @returns false when no such job is running
 */
export async function wakeDeferredJob(client: Client, input: { tenant: string; jobId: string }): Promise<boolean> {
  try {
    await client.workflow.getHandle(jobWorkflowId(input)).signal('wake');
    return true;
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return false;
    throw error;
  }
}
