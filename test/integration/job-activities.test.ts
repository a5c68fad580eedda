/**
 * The deferred-job store on DynamoDB Local and the job activities against the
 * real Redis decider (`MockActivityEnvironment`): every write is idempotent
 * under the job id, the per-tenant cap holds under concurrency, and a retried
 * activity neither charges nor runs a job twice.
 */
import { randomBytes } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { RedisDecider, connectDeciderRedis, shardOf, usageStreamKey, type DeciderRedis, type LimitSpec } from '../../src/decider/index.js';
import { InMemoryPlanStore, SchemaJobExecutor } from '../../src/graphql/index.js';
import { DemoStore, createDemoSchema } from '../../src/graphql/demo/index.js';
import { createDynamoClient } from '../../src/metering/index.js';
import { CapacityError, parseLimitId, parseTenantId, systemClock, type TenantId } from '../../src/shared/index.js';
import {
  createJobActivities,
  type AdmitJobInput,
  type ExecuteJobInput,
  type ExecuteJobResult,
  type JobAdmission,
} from '../../src/workflows/activities/index.js';
import { DynamoJobStore, type JobExecutor } from '../../src/jobs/index.js';
import { closeAfterAll } from '../support/teardown.js';
import { plan, slowBucket } from '../support/graphql.js';
import { testConfig, uniqueTenant } from '../support/stack.js';
import { streamEvents } from '../support/usage-stream.js';

const SHARDS = 16;
const config = testConfig();
const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
const jobs = new DynamoJobStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
let redis: DeciderRedis;

beforeAll(async () => {
  redis = await connectDeciderRedis({ url: config.redis.url, commandTimeoutMs: 5_000 });
});

closeAfterAll(() => [redis, dynamo]);

const jobId = (): string => `j-${randomBytes(16).toString('hex')}`;

function newJob(tenant: TenantId, id = jobId(), maxOpenJobs = 10) {
  return {
    jobId: id,
    tenant,
    keyId: 'k1',
    requestId: `i-${id}`,
    operationName: 'Export',
    cost: 500,
    createdAtMs: 1_000,
    expiresAtMs: 61_000,
    maxOpenJobs,
  };
}

describe('DynamoJobStore', () => {
  it('records a job once: a second create of the same id returns it and counts nothing', async () => {
    const tenant = parseTenantId(uniqueTenant('js'));
    const input = newJob(tenant);
    const first = await jobs.create(input);
    const again = await jobs.create({ ...input, createdAtMs: 2_000 });
    expect(first.isNew).toBe(true);
    expect(again).toMatchObject({ isNew: false, job: { jobId: input.jobId, status: 'queued', createdAtMs: 1_000 } });
    expect(await jobs.openJobs(tenant)).toBe(1);
  });

  it('holds the per-tenant cap under 12 concurrent creates of different jobs', async () => {
    const tenant = parseTenantId(uniqueTenant('js'));
    const results = await Promise.allSettled(Array.from({ length: 12 }, () => jobs.create(newJob(tenant, jobId(), 3))));
    const created = results.filter((result) => result.status === 'fulfilled');
    const refused = results.filter((result) => result.status === 'rejected').map((result) => result.reason as unknown);
    expect(created).toHaveLength(3);
    expect(refused).toHaveLength(9);
    expect(refused.every((reason) => reason instanceof CapacityError && reason.code === 'JOB_QUEUE_FULL')).toBe(true);
    expect(await jobs.openJobs(tenant)).toBe(3);
  });

  it('finishes once, frees one place, and keeps a finished job finished', async () => {
    const tenant = parseTenantId(uniqueTenant('js'));
    const input = newJob(tenant);
    await jobs.create(input);
    expect(await jobs.markRunning({ tenant, jobId: input.jobId, nowMs: 2_000 })).toBe(true);
    expect(await jobs.finish({ tenant, jobId: input.jobId, status: 'failed', errorCode: 'X', nowMs: 3_000 })).toBe(true);
    expect(await jobs.finish({ tenant, jobId: input.jobId, status: 'succeeded', errorCode: null, nowMs: 4_000 })).toBe(false);
    expect(await jobs.markRunning({ tenant, jobId: input.jobId, nowMs: 5_000 })).toBe(false);
    expect(await jobs.get(tenant, input.jobId)).toMatchObject({
      status: 'failed',
      errorCode: 'X',
      startedAtMs: 2_000,
      finishedAtMs: 3_000,
    });
    expect(await jobs.openJobs(tenant)).toBe(0);
  });

  it('stores a result once: a second store keeps the first', async () => {
    const tenant = parseTenantId(uniqueTenant('js'));
    const input = newJob(tenant);
    await jobs.create(input);
    await jobs.storeResult({ tenant, jobId: input.jobId, result: { data: { n: 1 } }, actualCost: 7, nowMs: 2_000 });
    const second = await jobs.storeResult({ tenant, jobId: input.jobId, result: { data: { n: 2 } }, actualCost: 9, nowMs: 3_000 });
    expect(second).toEqual({ result: { data: { n: 1 } }, actualCost: 7 });
  });

  it('never shows a job under another tenant', async () => {
    const owner = parseTenantId(uniqueTenant('js'));
    const input = newJob(owner);
    await jobs.create(input);
    expect(await jobs.get(parseTenantId(uniqueTenant('js')), input.jobId)).toBeUndefined();
  });
});

describe('job activities', () => {
  const store = new DemoStore();
  const plans = new InMemoryPlanStore();
  const schemaExecutor = new SchemaJobExecutor({
    schema: createDemoSchema({ store, version: 'test', deciderTimeMs: () => Promise.resolve(0), clock: systemClock }),
    plans,
  });
  /** Counts runs (a fake of our own port around the real executor). */
  let runs = 0;
  const executor: JobExecutor = {
    policyOf: (input) => schemaExecutor.policyOf(input),
    execute: async (input) => {
      runs += 1;
      return schemaExecutor.execute(input);
    },
  };
  const env = new MockActivityEnvironment();

  function heavy(capacity: number): LimitSpec {
    return {
      id: parseLimitId('heavy'),
      scope: 'tenant',
      algorithm: { kind: 'token-bucket', capacity, refillAmount: 1, refillPeriodMs: 3_600_000 },
      mode: 'defer',
      onDeciderDown: 'open',
    };
  }

  async function setup(heavyCapacity: number) {
    const tenant = parseTenantId(uniqueTenant('ja'));
    const planId = `p-${tenant}`;
    plans.set(plan(planId, [slowBucket(10_000), heavy(heavyCapacity)]));
    const id = jobId();
    await jobs.create({ ...newJob(tenant, id), requestId: `i-${id}` });
    const activities = createJobActivities({
      decider: new RedisDecider(redis, { shardCount: SHARDS, clock: systemClock }),
      store: jobs,
      executor,
    });
    const ref = { jobId: id, tenant, keyId: 'k1', planId, requestId: `i-${id}`, operationName: 'Export' };
    const admit = (input: AdmitJobInput): Promise<JobAdmission> => env.run((arg: AdmitJobInput) => activities.admitDeferredJob(arg), input);
    const execute = (input: ExecuteJobInput): Promise<ExecuteJobResult> =>
      env.run((arg: ExecuteJobInput) => activities.executeDeferredJob(arg), input);
    /** Another job of the same tenant and plan. */
    const another = async () => {
      const other = jobId();
      await jobs.create({ ...newJob(tenant, other), requestId: `i-${other}` });
      return { ...ref, jobId: other, requestId: `i-${other}` };
    };
    return { tenant, id, ref, admit, execute, another };
  }

  async function reservedEvents(tenant: string, requestId: string): Promise<number> {
    const entries = streamEvents(await redis.xrange(usageStreamKey(shardOf(parseTenantId(tenant), SHARDS)), '-', '+'));
    return entries.filter(([, fields]) => fields.includes(requestId) && fields.includes('usage.reserved.v1')).length;
  }

  it('admits a job once: a retried admission is a replay, charged once, and the job is running', async () => {
    const { tenant, id, ref, admit } = await setup(600);
    const input = { ...ref, cost: 500, recordTtlMs: 3_600_000 };
    const first = await admit(input);
    const retried = await admit(input);
    expect(first.kind).toBe('admitted');
    expect(retried.kind).toBe('admitted');
    expect(await reservedEvents(tenant, ref.requestId)).toBe(1);
    expect((await jobs.get(tenant, id))?.status).toBe('running');
  });

  it('is refused with a retry time (not deferred again) when its defer limit is spent', async () => {
    // given a 600-unit defer limit of which a first job took 500
    const { tenant, ref, admit, another } = await setup(600);
    expect((await admit({ ...ref, cost: 500, recordTtlMs: 3_600_000 })).kind).toBe('admitted');
    // when a second job of 500 asks
    const second = await another();
    const admission = await admit({ ...second, cost: 500, recordTtlMs: 3_600_000 });
    // then it must wait (the limit's defer mode acts as hard for a job), and nothing is charged for it
    expect(admission.kind).toBe('wait');
    expect(admission.kind === 'wait' ? admission.retryAfterMs : 0).toBeGreaterThan(0);
    expect(await reservedEvents(tenant, second.requestId)).toBe(0);
  });

  it('fails a job whose cost can never fit its limit', async () => {
    const { ref, admit } = await setup(100);
    const admission = await admit({ ...ref, cost: 5_000, recordTtlMs: 3_600_000 });
    expect(admission).toEqual({ kind: 'never', errorCode: 'COST_ABOVE_LIMIT' });
  });

  it('runs the operation once: a retried execution returns the stored result without running it again', async () => {
    const { ref, execute } = await setup(600);
    const input = { ...ref, cost: 500, query: 'mutation Export { exportOrdersReport { id rowCount } }', variables: {} };
    const runsBefore = runs;
    const first = await execute(input);
    const retried = await execute(input);
    expect(first).toEqual({ actualCost: 500, status: 'succeeded', errorCode: null });
    expect(retried).toEqual(first);
    expect(runs - runsBefore).toBe(1);
  });

  it('stores a run without data as failed with the first error code', async () => {
    const { tenant, id, ref, execute } = await setup(600);
    const result = await execute({ ...ref, cost: 500, query: 'mutation Export { nope }', variables: {} });
    expect(result).toEqual({ actualCost: 1, status: 'failed', errorCode: 'GRAPHQL_VALIDATION_FAILED' });
    expect((await jobs.get(tenant, id))?.result).toMatchObject({ data: null, errors: [{ code: 'GRAPHQL_VALIDATION_FAILED' }] });
  });
});
