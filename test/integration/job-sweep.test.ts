/**
 * The sweep of unfinished deferred jobs, on DynamoDB Local and the Temporal dev
 * server, in tables of its own (a fresh prefix: the sweep looks at every
 * tenant's jobs, and must not touch other files' jobs):
 * - the open-jobs index lists exactly the unfinished jobs, and a jobs table
 *   created before the index gets it (with the jobs already in it);
 * - one sweep over every shard starts again each job whose workflow is gone,
 *   leaves running and young ones alone, ends those past their TTL that have
 *   nothing to restart them from (freeing their queue place), and pages;
 * - the `jobs-sweep/<scope>` workflow does it cycle after cycle across
 *   continue-as-new, with its start policies asserted and its history replayed.
 * Job workflows run on a task queue nobody polls: only their starts are looked at.
 */
import { randomBytes } from 'node:crypto';
import { CreateTableCommand, DeleteTableCommand, DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTables, tableNames } from '../../infra/tables.js';
import { createDynamoClient } from '../../src/metering/index.js';
import { createLogger, parseTenantId, type TenantId } from '../../src/shared/index.js';
import {
  DynamoJobStore,
  EMPTY_JOB_SWEEP_COUNTS,
  OPEN_JOB_SHARDS,
  addJobSweepCounts,
  openJobShard,
  type JobSettings,
  type JobSweepCounts,
  type JobSweepPosition,
} from '../../src/jobs/index.js';
import {
  WorkerMetrics,
  ensureJobSweepWorkflow,
  jobSweepStateQuery,
  jobSweepWorkflowId,
  jobWorkflowId,
  sweepOpenJobs,
  type JobSweepSettings,
} from '../../src/workflows/index.js';
import type { DeferredJobInput } from '../../src/workflows/workflows/index.js';
import { createTollgateWorker } from '../../src/workflows/index.js';
import { waitFor } from '../support/poll.js';
import { closeAll } from '../support/teardown.js';
import { captureHistory, recordedHistories, replayFailures } from '../support/replay.js';
import { TEST_SUBMISSION, jobWorkflowState, recordTestJob, type RecordTestJobInput } from '../support/jobs.js';
import { testConfig, uniqueTenant } from '../support/stack.js';
import { quietTemporalRuntime } from '../support/temporal.js';

const prefix = `sweep_${randomBytes(4).toString('hex')}_`;
const config = testConfig({ DYNAMODB_TABLE_PREFIX: prefix });
const nobody = `job-sweep-nobody-${randomBytes(4).toString('hex')}`;
const settings: JobSettings = { ...config.jobs, taskQueue: nobody };
const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
const jobs = new DynamoJobStore(dynamo, { tablePrefix: prefix });
const GRACE_MS = 60_000;
const HOUR_MS = 3_600_000;
let connection: Connection;
let client: Client;
const dropped: string[] = [];

beforeAll(async () => {
  quietTemporalRuntime();
  await ensureTables(dynamo, prefix);
  dropped.push(...Object.values(tableNames(prefix)));
  connection = await Connection.connect({ address: config.temporal.address });
  client = new Client({ connection, namespace: config.temporal.namespace });
}, 120_000);

afterAll(async () => {
  for await (const execution of client.workflow.list({ query: `TaskQueue = '${nobody}' AND ExecutionStatus = 'Running'` }))
    await client.workflow
      .getHandle(execution.workflowId)
      .terminate('test over')
      .catch(() => undefined);
  await connection.close();
  for (const table of dropped) await dynamo.send(new DeleteTableCommand({ TableName: table })).catch(() => undefined);
  await closeAll(dynamo);
});

const SUBMISSION = TEST_SUBMISSION;

/** Records a job created `ageMs` ago, as a submit whose workflow start failed leaves it (a workflow on the unpolled queue when asked). */
async function recordJob(
  tenant: TenantId,
  name: string,
  options: Omit<RecordTestJobInput, 'store' | 'client' | 'taskQueue' | 'tenant' | 'name'> & { store?: DynamoJobStore },
): Promise<string> {
  return recordTestJob({ store: jobs, client, taskQueue: nobody, tenant, name, ...options });
}

async function workflowState(tenant: string, jobId: string): Promise<string> {
  return jobWorkflowState(client, { tenant, jobId });
}

async function startedInput(tenant: string, jobId: string): Promise<DeferredJobInput> {
  const history = await client.workflow.getHandle(jobWorkflowId({ tenant, jobId })).fetchHistory();
  const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0]?.data;
  return JSON.parse(Buffer.from(payload ?? new Uint8Array()).toString('utf8')) as DeferredJobInput;
}

/** Every shard once, page by page; the summed counts and the number of pages. */
async function sweepAll(pageSize: number): Promise<{ counts: JobSweepCounts; pages: number }> {
  let counts = EMPTY_JOB_SWEEP_COUNTS;
  let pages = 0;
  for (let position: JobSweepPosition | null = { shard: 0, after: null }; position !== null;) {
    const page = await sweepOpenJobs({ client, store: jobs, settings, position, nowMs: Date.now(), graceMs: GRACE_MS, pageSize });
    counts = addJobSweepCounts(counts, page.counts);
    pages += 1;
    position = page.next;
  }
  return { counts, pages };
}

/** The unfinished jobs the index lists, older than now, every shard. */
async function listedOpen(store: DynamoJobStore = jobs): Promise<string[]> {
  const ids: string[] = [];
  for (let shard = 0; shard < OPEN_JOB_SHARDS; shard += 1) {
    for (let after = undefined as Parameters<DynamoJobStore['listOpen']>[0]['after']; ;) {
      const page = await store.listOpen({ shard, beforeMs: Date.now() + 1, limit: 50, ...(after === undefined ? {} : { after }) });
      ids.push(...page.jobs.map((job) => `${job.tenant}/${job.jobId}`));
      if (page.next === null) break;
      after = page.next;
    }
  }
  return ids.sort();
}

describe('the open-jobs index', () => {
  it('lists exactly the unfinished jobs of every tenant, each in the shard of its id, until they finish', async () => {
    // given two tenants' jobs, one of them finished
    const [a, b] = [parseTenantId(uniqueTenant('s')), parseTenantId(uniqueTenant('s'))];
    const queued = await recordJob(a, 'index-queued', { ageMs: 5_000 });
    const running = await recordJob(b, 'index-running', { ageMs: 5_000 });
    await jobs.markRunning({ tenant: b, jobId: running, nowMs: Date.now() });
    const done = await recordJob(a, 'index-done', { ageMs: 5_000 });
    expect(await jobs.finish({ tenant: a, jobId: done, status: 'succeeded', errorCode: null, nowMs: Date.now() })).toBe(true);
    // then the index holds the two unfinished ones, in their shards, and not the finished one
    const listed = (await listedOpen()).filter((entry) => entry.startsWith(`${a}/`) || entry.startsWith(`${b}/`));
    expect(listed).toEqual([`${a}/${queued}`, `${b}/${running}`].sort());
    const page = await jobs.listOpen({ shard: openJobShard(queued), beforeMs: Date.now(), limit: 100 });
    expect(page.jobs).toContainEqual({ tenant: a, jobId: queued, createdAtMs: expect.any(Number) as number });
    // and a bad shard is refused
    await expect(jobs.listOpen({ shard: OPEN_JOB_SHARDS, beforeMs: Date.now(), limit: 1 })).rejects.toMatchObject({
      code: 'INVALID_INPUT',
    });
  });

  it('is added to a jobs table created before it, with the unfinished jobs already in it', async () => {
    // given a jobs table as the previous version created it (no index) holding an unfinished job
    const legacyPrefix = `sweep_legacy_${randomBytes(4).toString('hex')}_`;
    const table = `${legacyPrefix}jobs`;
    dropped.push(...Object.values(tableNames(legacyPrefix)));
    await dynamo.send(
      new CreateTableCommand({
        TableName: table,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
      }),
    );
    const legacy = new DynamoJobStore(dynamo, { tablePrefix: legacyPrefix });
    const tenant = parseTenantId(uniqueTenant('s'));
    const jobId = await recordJob(tenant, 'legacy', { ageMs: 5_000, store: legacy });
    // when the tables are ensured, twice
    await ensureTables(dynamo, legacyPrefix);
    await ensureTables(dynamo, legacyPrefix);
    // then the table has the indexes (open-jobs, and the dashboard's tenant-jobs), active, and it lists the job
    const described = await dynamo.send(new DescribeTableCommand({ TableName: table }));
    expect(described.Table?.GlobalSecondaryIndexes?.map((index) => [index.IndexName, index.IndexStatus]).sort()).toEqual([
      ['open-jobs', 'ACTIVE'],
      ['tenant-jobs', 'ACTIVE'],
    ]);
    expect(await listedOpen(legacy)).toEqual([`${tenant}/${jobId}`]);
  }, 120_000);
});

describe('a sweep of the unfinished jobs', () => {
  it('restarts the jobs whose workflow is gone, ends the ones past their TTL it cannot restart, and leaves the rest', async () => {
    // given, across two tenants: an orphan two minutes old, a young orphan, a job whose workflow runs, one without a kept
    // submission still within its TTL, and two without one past their TTL (one never admitted, one admitted)
    const [a, b] = [parseTenantId(uniqueTenant('s')), parseTenantId(uniqueTenant('s'))];
    const before = await listedOpen();
    const orphan = await recordJob(a, 'orphan', { ageMs: GRACE_MS * 2 });
    const young = await recordJob(a, 'young', { ageMs: 1_000 });
    const waiting = await recordJob(b, 'waiting', { ageMs: GRACE_MS * 3, hasWorkflow: true });
    const bare = await recordJob(b, 'bare', { ageMs: GRACE_MS * 2, hasSubmission: false });
    const lapsed = await recordJob(a, 'lapsed', { ageMs: 2 * HOUR_MS, ttlMs: HOUR_MS, hasSubmission: false });
    const lost = await recordJob(b, 'lost', { ageMs: 2 * HOUR_MS, ttlMs: HOUR_MS, hasSubmission: false });
    await jobs.markRunning({ tenant: b, jobId: lost, nowMs: Date.now() - HOUR_MS });
    expect([await jobs.openJobs(a), await jobs.openJobs(b)]).toEqual([3, 3]);
    // (the earlier test's jobs are young or running: they are looked at only as running or not at all)
    expect(before.every((entry) => !entry.startsWith(`${a}/`) && !entry.startsWith(`${b}/`))).toBe(true);

    // when one sweep goes over every shard
    const first = await sweepAll(100);

    // then the orphan runs again with the input its submit would have given it
    expect(first.counts).toMatchObject({ restarted: 1, ended: 2, stranded: 1, finished: 0 });
    expect(await workflowState(a, orphan)).toBe('RUNNING');
    const record = await jobs.get(a, orphan);
    expect(await startedInput(a, orphan)).toMatchObject({
      jobId: orphan,
      tenant: a,
      requestId: 'orphan',
      cost: 3,
      query: SUBMISSION.query,
      variables: SUBMISSION.variables,
      submittedAtMs: record?.createdAtMs,
      ttlMs: HOUR_MS,
    });
    // and the young one, the running one and the one within its TTL are untouched
    expect(await workflowState(a, young)).toBe('NONE');
    expect((await jobs.get(a, young))?.status).toBe('queued');
    expect((await jobs.get(b, bare))?.status).toBe('queued');
    expect(await workflowState(b, bare)).toBe('NONE');
    expect(await workflowState(b, waiting)).toBe('RUNNING');
    // and the two past their TTL are finished, uncharged when never admitted, and free their queue places
    expect(await jobs.get(a, lapsed)).toMatchObject({ status: 'expired', errorCode: 'JOB_EXPIRED', actualCost: null });
    expect(await jobs.get(b, lost)).toMatchObject({ status: 'failed', errorCode: 'JOB_LOST' });
    expect([await jobs.openJobs(a), await jobs.openJobs(b)]).toEqual([2, 2]);

    // when it sweeps again
    const second = await sweepAll(100);
    // then nothing is started twice and nothing more ends: the restarted job is now only seen running
    expect(second.counts).toMatchObject({ restarted: 0, ended: 0, stranded: 1 });
    expect(second.counts.running).toBe(first.counts.running + 1);
    expect(second.counts.checked).toBe(first.counts.checked - 2);
    const history = await client.workflow.getHandle(jobWorkflowId({ tenant: a, jobId: orphan })).fetchHistory();
    expect(
      history.events?.filter(
        (event) => event.workflowExecutionStartedEventAttributes !== undefined && event.workflowExecutionStartedEventAttributes !== null,
      ),
    ).toHaveLength(1);
  });

  it('pages through many orphans of many tenants and starts each exactly once', async () => {
    // given 40 orphans of 8 tenants
    const tenants = Array.from({ length: 8 }, () => parseTenantId(uniqueTenant('s')));
    const orphans: [TenantId, string][] = [];
    for (let index = 0; index < 40; index += 1) {
      const tenant = tenants[index % tenants.length] as TenantId;
      orphans.push([tenant, await recordJob(tenant, `many-${index}`, { ageMs: GRACE_MS + 10_000 + index })]);
    }
    // when a sweep of 3 jobs per page goes over every shard
    const { counts, pages } = await sweepAll(3);
    // then every orphan was started, once, over more pages than shards
    expect(counts.restarted).toBe(40);
    expect(pages).toBeGreaterThan(40 / 3);
    for (const [tenant, jobId] of orphans) expect(await workflowState(tenant, jobId)).toBe('RUNNING');
    expect((await sweepAll(3)).counts.restarted).toBe(0);
  });
});

describe('jobs-sweep/<scope> workflow', () => {
  const scope = `test-${randomBytes(4).toString('hex')}`;
  const workerQueue = `job-sweep-${randomBytes(4).toString('hex')}`;
  const sweepSettings: JobSweepSettings = { intervalMs: 200, graceMs: GRACE_MS, pageSize: 5, pagesPerRun: 4, activityTimeoutMs: 30_000 };

  it('sweeps cycle after cycle across continue-as-new, joins a running sweep, and starts again after a terminate', async () => {
    const native = await NativeConnection.connect({ address: config.temporal.address });
    const metrics = new WorkerMetrics();
    const created = await createTollgateWorker({
      config: { ...config, jobs: settings },
      connection: native,
      logger: createLogger({ level: 'silent', name: 'test' }),
      taskQueue: workerQueue,
      metrics,
    });
    const running = created.worker.run();
    try {
      // given three orphans
      const tenant = parseTenantId(uniqueTenant('s'));
      const orphans = [
        await recordJob(tenant, 'wf-0', { ageMs: GRACE_MS * 2 }),
        await recordJob(tenant, 'wf-1', { ageMs: GRACE_MS * 2 }),
        await recordJob(tenant, 'wf-2', { ageMs: GRACE_MS * 2 }),
      ];
      // when the sweep is ensured, twice (the second joins the first)
      const firstRun = await ensureJobSweepWorkflow(client, { scope, taskQueue: workerQueue, settings: sweepSettings });
      const secondRun = await ensureJobSweepWorkflow(client, { scope, taskQueue: workerQueue, settings: sweepSettings });
      expect(secondRun).toBe(firstRun);
      // then every orphan is started again
      for (const jobId of orphans) await waitFor(`orphan ${jobId} running`, async () => (await workflowState(tenant, jobId)) === 'RUNNING');
      // and the sweep goes on, cycle after cycle, in new runs (4 pages per run)
      const handle = client.workflow.getHandle(jobSweepWorkflowId(scope));
      const state = await waitFor(
        'three sweep cycles',
        async () => {
          const current = await handle.query(jobSweepStateQuery);
          return current.completedCycles >= 3 && current;
        },
        { intervalMs: 200 },
      );
      expect((await handle.describe()).runId).not.toBe(firstRun);
      expect(state.last?.restarted).toBe(0);
      expect(state.last?.running).toBeGreaterThanOrEqual(3);
      // and the worker's metrics count the restarts
      const restarted = (await metrics.jobsSwept.get()).values.find((value) => value.labels.outcome === 'restarted')?.value;
      expect(restarted).toBeGreaterThanOrEqual(3);

      // and its histories (the first run, which restarted the orphans and continued as new, and the current one), and
      // the recorded fixture, replay deterministically
      const firstHistory = await client.workflow.getHandle(jobSweepWorkflowId(scope), firstRun).fetchHistory();
      const events = firstHistory.events ?? [];
      expect(events.filter((event) => event.activityTaskCompletedEventAttributes != null).length).toBe(sweepSettings.pagesPerRun);
      expect(events.at(-1)?.workflowExecutionContinuedAsNewEventAttributes).toBeTruthy();
      const history = await handle.fetchHistory();
      // TOLLGATE_CAPTURE_HISTORIES=1 rewrites the fixture from this run
      captureHistory('jobs-sweep.json', firstHistory);
      const fixtures = recordedHistories(/^jobs-sweep/);
      expect(fixtures.length).toBeGreaterThanOrEqual(1);
      expect(
        await replayFailures([
          { workflowId: jobSweepWorkflowId(scope), history: firstHistory },
          { workflowId: jobSweepWorkflowId(scope), history },
          ...fixtures,
        ]),
      ).toEqual([]);

      // when an operator terminates it, the next ensure starts a new run (ALLOW_DUPLICATE)
      const before = (await handle.describe()).runId;
      await handle.terminate('operator stopped it');
      const after = await ensureJobSweepWorkflow(client, { scope, taskQueue: workerQueue, settings: sweepSettings });
      expect(after).not.toBe(before);
      expect((await handle.describe()).status.name).toBe('RUNNING');
    } finally {
      await client.workflow
        .getHandle(jobSweepWorkflowId(scope))
        .terminate('test over')
        .catch(() => undefined);
      created.worker.shutdown();
      await running;
      created.close();
      await native.close();
    }
  }, 120_000);
});
