/**
 * The account workflow's wake at a period close, called as its activity
 * against DynamoDB Local and the Temporal dev server: queued jobs are
 * signalled oldest first and at most `wakeMaxJobs`; a queued job whose
 * workflow is gone (recorded while Temporal was unreachable, its client never
 * retried) is started again from its record, the way a retry of its request
 * would start it, once it is older than a minute; younger ones, and records
 * without a kept submission, are left alone. Job workflows run on a task queue
 * nobody polls: only their starts, inputs and signals are looked at.
 */
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deferredJobId } from '../../src/jobs/index.js';
import { DynamoAccountStore, DynamoPeriodStore } from '../../src/billing/index.js';
import { createDynamoClient } from '../../src/metering/index.js';
import { parseEventId, parseTenantId, type TenantId } from '../../src/shared/index.js';
import { DynamoJobStore, MAX_SUBMISSION_CHARS, type JobSettings } from '../../src/jobs/index.js';
import { jobWorkflowId, restartDeferredJob } from '../../src/workflows/index.js';
import { RESTART_GRACE_MS, createAccountActivities } from '../../src/workflows/activities/index.js';
import type { DeferredJobInput } from '../../src/workflows/workflows/index.js';
import { closeAll } from '../support/teardown.js';
import { TEST_SUBMISSION, jobWorkflowState, recordTestJob } from '../support/jobs.js';
import { testConfig, uniqueTenant } from '../support/stack.js';

const config = testConfig();
const nobody = `job-wake-nobody-${randomBytes(4).toString('hex')}`;
const settings: JobSettings = { ...config.jobs, taskQueue: nobody };
const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
const jobs = new DynamoJobStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
let connection: Connection;
let client: Client;
const started: string[] = [];

beforeAll(async () => {
  connection = await Connection.connect({ address: config.temporal.address });
  client = new Client({ connection, namespace: config.temporal.namespace });
});

afterAll(async () => {
  for (const id of started)
    await client.workflow
      .getHandle(id)
      .terminate('test over')
      .catch(() => undefined);
  await closeAll(connection, dynamo);
});

const SUBMISSION = TEST_SUBMISSION;

/** Records a queued job created `ageMs` ago; with a workflow (on the unpolled queue) when asked. */
async function recordJob(
  tenant: TenantId,
  name: string,
  options: { ageMs: number; hasWorkflow: boolean; hasSubmission?: boolean },
): Promise<string> {
  const jobId = await recordTestJob({ store: jobs, client, taskQueue: nobody, tenant, name, ...options });
  started.push(jobWorkflowId({ tenant, jobId }));
  return jobId;
}

async function wakeSignals(tenant: string, jobId: string): Promise<number> {
  const history = await client.workflow.getHandle(jobWorkflowId({ tenant, jobId })).fetchHistory();
  return (history.events ?? []).filter((event) => event.workflowExecutionSignaledEventAttributes?.signalName === 'wake').length;
}

async function workflowState(tenant: string, jobId: string): Promise<string> {
  return jobWorkflowState(client, { tenant, jobId });
}

function activities(wakeMaxJobs: number) {
  return createAccountActivities({
    accounts: new DynamoAccountStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix }),
    periods: new DynamoPeriodStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix }),
    jobs,
    client,
    webhookTimeoutMs: 1_000,
    wakeMaxJobs,
    restartJob: async ({ tenant, jobId }) => restartDeferredJob({ client, store: jobs, settings, tenant, jobId }),
  });
}

describe('the wake at a period close', () => {
  it('signals the oldest queued jobs first, at most wakeMaxJobs of them', async () => {
    // given five waiting jobs recorded in an order unlike their ids' order
    const tenant = parseTenantId(uniqueTenant('w'));
    const ages = [50_000, 10_000, 40_000, 20_000, 30_000];
    const ids: string[] = [];
    for (const [index, ageMs] of ages.entries()) ids.push(await recordJob(tenant, `wake-${index}`, { ageMs, hasWorkflow: true }));
    const listed = await jobs.listQueued(tenant);
    expect(listed.map((job) => job.jobId)).toEqual([0, 2, 4, 3, 1].map((index) => ids[index]));
    expect(listed.map((job) => job.createdAtMs)).toEqual([...listed.map((job) => job.createdAtMs)].sort((a, b) => a - b));

    // when a close wakes at most three
    const result = await activities(3).wakeWaitingJobs({ tenant });

    // then exactly the three oldest were signalled, once each
    expect(result).toEqual({ woken: 3, restarted: 0, stranded: 0, skipped: 2 });
    const signals = await Promise.all(ids.map(async (jobId) => wakeSignals(tenant, jobId)));
    expect(signals).toEqual([1, 0, 1, 0, 1]);
  });

  it('starts a job whose workflow is gone from its record once it is older than a minute, and leaves the rest', async () => {
    // given a queued job recorded two minutes ago that never got a workflow, a young one, an old one without a kept
    // submission, and one whose workflow runs
    const tenant = parseTenantId(uniqueTenant('w'));
    const orphan = await recordJob(tenant, 'orphan', { ageMs: RESTART_GRACE_MS * 2, hasWorkflow: false });
    const young = await recordJob(tenant, 'young', { ageMs: 1_000, hasWorkflow: false });
    const bare = await recordJob(tenant, 'bare', { ageMs: RESTART_GRACE_MS * 3, hasWorkflow: false, hasSubmission: false });
    const waiting = await recordJob(tenant, 'waiting', { ageMs: RESTART_GRACE_MS * 4, hasWorkflow: true });

    // when a close wakes the tenant's jobs
    const result = await activities(100).wakeWaitingJobs({ tenant });

    // then the orphan runs again with the input its submit would have given it, the running one is only signalled,
    // and the young and the bare ones have no workflow
    expect(result).toEqual({ woken: 1, restarted: 1, stranded: 1, skipped: 0 });
    expect(await workflowState(tenant, orphan)).toBe('RUNNING');
    const history = await client.workflow.getHandle(jobWorkflowId({ tenant, jobId: orphan })).fetchHistory();
    const startedEvent = history.events?.[0]?.workflowExecutionStartedEventAttributes;
    expect(startedEvent?.taskQueue?.name).toBe(nobody);
    const payload = startedEvent?.input?.payloads?.[0]?.data;
    const input = JSON.parse(Buffer.from(payload ?? new Uint8Array()).toString('utf8')) as DeferredJobInput;
    const record = await jobs.get(tenant, orphan);
    expect(input).toMatchObject({
      jobId: orphan,
      tenant,
      keyId: 'k1',
      requestId: 'orphan',
      operationName: 'Export',
      cost: 3,
      planId: SUBMISSION.planId,
      query: SUBMISSION.query,
      variables: SUBMISSION.variables,
      submittedAtMs: record?.createdAtMs,
      ttlMs: 3_600_000,
    });
    expect(await workflowState(tenant, young)).toBe('NONE');
    expect(await workflowState(tenant, bare)).toBe('NONE');
    expect(await wakeSignals(tenant, waiting)).toBe(1);

    // when the next close comes: the restarted job is now only signalled, a second start never happens
    const again = await activities(100).wakeWaitingJobs({ tenant });
    expect(again).toEqual({ woken: 2, restarted: 0, stranded: 1, skipped: 0 });
    expect(
      (await client.workflow.getHandle(jobWorkflowId({ tenant, jobId: orphan })).fetchHistory()).events?.[0]?.eventId?.toString(),
    ).toBe('1');
    expect(await wakeSignals(tenant, orphan)).toBe(1);
  });

  it('drops the submission when the job finishes, keeps none that is too large, and restarts nothing finished', async () => {
    const tenant = parseTenantId(uniqueTenant('w'));
    const jobId = await recordJob(tenant, 'done', { ageMs: RESTART_GRACE_MS * 2, hasWorkflow: false });
    expect((await jobs.get(tenant, jobId))?.submission).toEqual(SUBMISSION);
    await jobs.finish({ tenant, jobId, status: 'expired', errorCode: 'JOB_EXPIRED', nowMs: Date.now() });
    expect((await jobs.get(tenant, jobId))?.submission).toBeNull();
    expect(await restartDeferredJob({ client, store: jobs, settings, tenant, jobId })).toBe('finished');
    expect(await workflowState(tenant, jobId)).toBe('NONE');

    const big = deferredJobId(tenant, parseEventId('big'));
    await jobs.create({
      jobId: big,
      tenant,
      keyId: 'k1',
      requestId: 'big',
      operationName: null,
      cost: 1,
      createdAtMs: 1,
      expiresAtMs: 2,
      maxOpenJobs: 100,
      submission: { ...SUBMISSION, variables: { blob: 'x'.repeat(MAX_SUBMISSION_CHARS) } },
    });
    expect((await jobs.get(tenant, big))?.submission).toBeNull();
    expect(await restartDeferredJob({ client, store: jobs, settings, tenant, jobId: big })).toBe('no-submission');
  });
});
