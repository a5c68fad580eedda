/**
 * Deferred (202) jobs end to end, on the real stack: the API (`createApi`, as
 * the server wires it, through `yoga.fetch`) against Redis, `TemporalDeferrer`
 * recording jobs in DynamoDB Local and starting `job/<tenant>/<jobId>`
 * workflows on the Temporal dev server, and the jobs worker running them
 * in-process against the demo schema. Waits poll with a deadline; nothing
 * asserts on elapsed time.
 */
import { randomBytes } from 'node:crypto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RedisDecider,
  bucketKey,
  connectDeciderRedis,
  shardOf,
  usageStreamKey,
  type DeciderRedis,
  type LimitSpec,
} from '../../src/decider/index.js';
import { decodeBucketState } from '../../src/decider/bucket-state.js';
import { InMemoryKeyStore, InMemoryPlanStore, SchemaJobExecutor } from '../../src/graphql/index.js';
import { createApi, type ApiServer } from '../../src/graphql/app.js';
import { DemoStore, createDemoSchema, demoSurface } from '../../src/graphql/demo/index.js';
import { TemporalDeferrer } from '../../src/workflows/index.js';
import { type JobView } from '../../src/jobs/index.js';
import { DynamoAccountStore } from '../../src/billing/index.js';
import { createDynamoClient } from '../../src/metering/index.js';
import { InvariantError, createLogger, parseKeyId, parseLimitId, parseTenantId, systemClock } from '../../src/shared/index.js';
import { DynamoJobStore, type JobExecutor, type JobSettings } from '../../src/jobs/index.js';
import { createJobsWorker, jobWorkflowId, wakeDeferredJob, type DeferredJobResult } from '../../src/workflows/index.js';
import { closeAll } from '../support/teardown.js';
import { waitFor } from '../support/poll.js';
import { captureHistory, recordedHistories, replayFailures } from '../support/replay.js';
import { bodyOf, codeOf, plan, slowBucket } from '../support/graphql.js';
import { testConfig, uniqueTenant } from '../support/stack.js';
import { quietTemporalRuntime } from '../support/temporal.js';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';
import { streamEvents } from '../support/usage-stream.js';

const SHARDS = 16;
const config = testConfig();
const logger = createLogger({ level: 'silent', name: 'test' });
const taskQueue = `jobs-${randomBytes(4).toString('hex')}`;
const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
const jobStore = new DynamoJobStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
const accounts = new DynamoAccountStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
const WEBHOOK_SECRET = randomBytes(16).toString('hex');
let receiver: WebhookReceiver;
const store = new DemoStore();
const plans = new InMemoryPlanStore();
const keyStore = new InMemoryKeyStore();

let redis: DeciderRedis;
let env: TestWorkflowEnvironment;
let worker: Worker;
let workerRun: Promise<void>;
/** Workflow ids of jobs that finished in this file, replayed at the end (determinism). */
const finishedWorkflows: { workflowId: string; fixture: string }[] = [];

const EXPORT = 'mutation Export { exportOrdersReport { id rowCount } }';
const EXPORT_COST = 500;

const schemaExecutor = new SchemaJobExecutor({
  schema: createDemoSchema({ store, version: 'test', deciderTimeMs: () => Promise.resolve(0), clock: systemClock, jobs: jobStore }),
  plans,
});

/** The real executor, except that operations named `name` fail for good (a fake of our own port). */
function explodingOn(name: string, inner: JobExecutor): JobExecutor {
  return {
    policyOf: (input) => inner.policyOf(input),
    execute: (input) => (input.operationName === name ? Promise.reject(new InvariantError('the executor broke')) : inner.execute(input)),
  };
}

beforeAll(async () => {
  quietTemporalRuntime();
  redis = await connectDeciderRedis({ url: config.redis.url, commandTimeoutMs: 5_000 });
  env = await TestWorkflowEnvironment.createFromExistingServer({ address: config.temporal.address, namespace: config.temporal.namespace });
  const decider = new RedisDecider(redis, { shardCount: SHARDS, clock: systemClock });
  worker = await createJobsWorker({
    connection: env.nativeConnection,
    namespace: config.temporal.namespace,
    taskQueue,
    deps: {
      decider,
      store: jobStore,
      executor: explodingOn('Explode', schemaExecutor),
      accounts,
      webhookTimeoutMs: 2_000,
    },
  });
  workerRun = worker.run();
  // fails its first POST, so the notice is retried
  receiver = await startWebhookReceiver({ secret: WEBHOOK_SECRET, failFirst: 1 });
});

afterAll(async () => {
  await receiver.close();
  worker.shutdown();
  await workerRun;
  await closeAll(env, redis, dynamo);
});

/** The API as the server builds it, with a TemporalDeferrer of the given settings. */
function api(settings: Partial<JobSettings> = {}): ApiServer {
  return createApi({
    redis,
    dynamo,
    tablePrefix: config.dynamodb.tablePrefix,
    temporal: env.connection,
    logger,
    version: 'test',
    decider: new RedisDecider(redis, { shardCount: SHARDS, clock: systemClock }),
    keyStore,
    plans,
    surface: demoSurface({ store, version: 'test', redis, jobs: jobStore }),
    deferrer: new TemporalDeferrer({
      client: env.client,
      store: jobStore,
      settings: { taskQueue, ttlMs: 60_000, retryMinMs: 100, retryMaxMs: 500, maxQueuedPerTenant: 50, ...settings },
    }),
    jobs: jobStore,
    tollgate: { random: () => 0.5 },
  });
}

/** A defer limit on the tenant: 600 units, refilled by `refillAmount` every `refillPeriodMs`. */
function deferBucket(refillAmount: number, refillPeriodMs: number): LimitSpec {
  return {
    id: parseLimitId('heavy'),
    scope: 'tenant',
    algorithm: { kind: 'token-bucket', capacity: 600, refillAmount, refillPeriodMs },
    mode: 'defer',
    onDeciderDown: 'open',
  };
}

/** A fresh tenant on its own plan (burst bucket of 10 000 that never refills during a test, plus `heavy`). */
function tenantWith(heavy: LimitSpec): { tenant: string; key: string } {
  const tenant = uniqueTenant('j');
  const planId = `p-${tenant}`;
  plans.set(plan(planId, [slowBucket(10_000), heavy]));
  return { tenant, key: keyStore.add({ tenant, keyId: 'k1', planId }).key };
}

async function post(yoga: ApiServer, key: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return yoga.fetch('http://tollgate.test/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers },
    body: JSON.stringify(body),
  });
}

async function getJob(yoga: ApiServer, key: string | null, path: string): Promise<Response> {
  return yoga.fetch(`http://tollgate.test${path}`, { headers: key === null ? {} : { authorization: `Bearer ${key}` } });
}

/** Polls `GET /jobs/<id>` until the job is in one of `statuses`; fails with the last status at the deadline. */
async function waitForJob(yoga: ApiServer, key: string, id: string, statuses: string[], deadlineMs = 45_000): Promise<JobView> {
  let last: JobView | undefined;
  return waitFor(
    `job ${id} to reach ${statuses.join('/')}`,
    async () => {
      const response = await getJob(yoga, key, `/jobs/${id}`);
      if (response.status !== 200) return undefined;
      last = ((await response.json()) as { job: JobView }).job;
      return statuses.includes(last.status) && last;
    },
    { timeoutMs: deadlineMs },
  ).catch((error: unknown) => {
    throw new Error(`job ${id} did not reach ${statuses.join('/')} in time (last: ${last?.status ?? 'unreadable'})`, { cause: error });
  });
}

/** Units left in the tenant's `burst` bucket (10 000 at start, refills 1 per hour). */
async function burstTokens(tenant: string): Promise<number> {
  const key = bucketKey({
    shard: shardOf(parseTenantId(tenant), SHARDS),
    tenant: parseTenantId(tenant),
    limitId: parseLimitId('burst'),
    subject: { scope: 'apiKey', keyId: parseKeyId('k1') },
  });
  const state = await redis.getBuffer(key);
  if (state === null) return Number.NaN;
  const decoded = decodeBucketState('token-bucket', state);
  return decoded.kind === 'token-bucket' ? decoded.tokens : Number.NaN;
}

/** The tenant's usage events of one type for one request id. */
async function usageEvents(tenant: string, type: string, id: string): Promise<Record<string, string>[]> {
  const entries = streamEvents(await redis.xrange(usageStreamKey(shardOf(parseTenantId(tenant), SHARDS)), '-', '+'));
  return entries
    .map(
      ([, fields]) =>
        Object.fromEntries(Array.from({ length: fields.length / 2 }, (_, i) => [fields[2 * i], fields[2 * i + 1]])) as Record<
          string,
          string
        >,
    )
    .filter((event) => event['tenant'] === tenant && event['type'] === type && event['id'] === id);
}

/** Spends `EXPORT_COST` of the tenant's 600-unit defer limit, so the next export is deferred. */
async function exhaust(yoga: ApiServer, key: string): Promise<void> {
  const first = await post(yoga, key, { query: EXPORT });
  expect(first.status).toBe(200);
}

async function deferExport(yoga: ApiServer, key: string, idempotencyKey: string): Promise<{ response: Response; id: string }> {
  const response = await post(yoga, key, { query: EXPORT }, { 'Idempotency-Key': idempotencyKey });
  const body = await bodyOf(response.clone());
  return { response, id: body.extensions?.job?.id ?? '' };
}

describe('a deferred operation', () => {
  it('is answered 202 with a job, then runs exactly once and is charged once when its limit frees up', async () => {
    // given a tenant whose defer limit is spent, refilling 600 units per 3 s
    const yoga = api();
    const { tenant, key } = tenantWith(deferBucket(600, 3_000));
    await exhaust(yoga, key);
    // when the export is asked for again
    const { response, id } = await deferExport(yoga, key, 'export-1');
    const callsAtDefer = store.resolverCalls;
    // then it is deferred: 202, a Location, a queued job
    expect(response.status).toBe(202);
    const body = await bodyOf(response);
    expect(body.data).toBeNull();
    expect(body.extensions?.job).toMatchObject({ id, status: 'queued' });
    expect(response.headers.get('Location')).toBe(`/jobs/${id}`);
    // and once the limit frees up it succeeds with the operation's result
    const job = await waitForJob(yoga, key, id, ['succeeded', 'failed', 'expired']);
    expect(job).toMatchObject({
      id,
      status: 'succeeded',
      operationName: 'Export',
      requestedCost: EXPORT_COST,
      actualCost: EXPORT_COST,
      errorCode: null,
    });
    expect(job.result).toEqual({ data: { exportOrdersReport: { id: expect.stringMatching(/^x-\d+$/) as unknown, rowCount: 0 } } });
    expect(job.startedAtMs).not.toBeNull();
    expect(job.finishedAtMs).not.toBeNull();
    // ran once, charged once: one resolver call, one usage.reserved event, the burst bucket moved by two exports
    const workflow = (await env.client.workflow.getHandle(jobWorkflowId({ tenant, jobId: id })).result()) as DeferredJobResult;
    expect(workflow).toMatchObject({ status: 'succeeded', actualCost: EXPORT_COST });
    finishedWorkflows.push({ workflowId: jobWorkflowId({ tenant, jobId: id }), fixture: 'job-succeeded.json' });
    expect(store.resolverCalls - callsAtDefer).toBe(1);
    const stored = await jobStore.get(parseTenantId(tenant), id);
    expect(await usageEvents(tenant, 'usage.reserved.v1', stored?.requestId ?? '')).toHaveLength(1);
    expect(await burstTokens(tenant)).toBe(10_000 - 2 * EXPORT_COST);
    expect(await jobStore.openJobs(parseTenantId(tenant))).toBe(0);
    // and the GraphQL job(id) field shows the same job to its tenant
    const viaGraphQL = await bodyOf(
      await post(yoga, key, { query: 'query J($id: ID!) { job(id: $id) { id status actualCost result } }', variables: { id } }),
    );
    expect(viaGraphQL.data?.['job']).toEqual({ id, status: 'succeeded', actualCost: EXPORT_COST, result: job.result });
  });

  it('is one job, run and charged once, when 50 requests with one Idempotency-Key are deferred at once', async () => {
    // given a spent defer limit (refills 600 units per 6 s: the burst is over long before it has room)
    const yoga = api();
    const { tenant, key } = tenantWith(deferBucket(600, 6_000));
    await exhaust(yoga, key);
    const callsBefore = store.resolverCalls;
    // when 50 identical requests arrive together (the number)
    const responses = await Promise.all(Array.from({ length: 50 }, () => deferExport(yoga, key, 'same-key')));
    // then every one is a 202 naming the same job
    expect(responses.map((entry) => entry.response.status)).toEqual(Array.from({ length: 50 }, () => 202));
    const ids = new Set(responses.map((entry) => entry.id));
    expect(ids.size).toBe(1);
    const [id = ''] = [...ids];
    const job = await waitForJob(yoga, key, id, ['succeeded', 'failed', 'expired']);
    expect(job.status).toBe('succeeded');
    // and it ran once, was charged once and holds one place in the queue, now freed
    expect(store.resolverCalls - callsBefore).toBe(1);
    const stored = await jobStore.get(parseTenantId(tenant), id);
    expect(await usageEvents(tenant, 'usage.reserved.v1', stored?.requestId ?? '')).toHaveLength(1);
    expect(await burstTokens(tenant)).toBe(10_000 - 2 * EXPORT_COST);
    expect(await jobStore.openJobs(parseTenantId(tenant))).toBe(0);
  });

  it('ends expired, uncharged and unrun when its limit does not free up before its TTL', async () => {
    // given a defer limit that refills 1 unit per hour, and jobs that live 1.5 s
    const yoga = api({ ttlMs: 1_500 });
    const { tenant, key } = tenantWith(deferBucket(1, 3_600_000));
    await exhaust(yoga, key);
    // when the export is deferred
    const { response, id } = await deferExport(yoga, key, 'too-late');
    expect(response.status).toBe(202);
    const callsAtDefer = store.resolverCalls;
    // then it expires
    const job = await waitForJob(yoga, key, id, ['succeeded', 'failed', 'expired']);
    expect(job).toMatchObject({ status: 'expired', errorCode: 'JOB_EXPIRED', actualCost: null, result: null, startedAtMs: null });
    const workflow = (await env.client.workflow.getHandle(jobWorkflowId({ tenant, jobId: id })).result()) as DeferredJobResult;
    expect(workflow.status).toBe('expired');
    finishedWorkflows.push({ workflowId: jobWorkflowId({ tenant, jobId: id }), fixture: 'job-expired.json' });
    expect(workflow.attempts).toBeGreaterThan(0);
    // and nothing was run or charged for it: no usage event, only the first export left the bucket
    const stored = await jobStore.get(parseTenantId(tenant), id);
    expect(store.resolverCalls).toBe(callsAtDefer);
    expect(await usageEvents(tenant, 'usage.reserved.v1', stored?.requestId ?? '')).toEqual([]);
    expect(await burstTokens(tenant)).toBe(10_000 - EXPORT_COST);
    expect(await jobStore.openJobs(parseTenantId(tenant))).toBe(0);
  });
});

describe('finish notices', () => {
  it('sends the tenant a signed job.finished notice once when asked (Tollgate-Notify: webhook), and none when not', async () => {
    // given a tenant with a webhook (whose first POST fails) and a spent defer limit that refills within seconds
    const yoga = api();
    const { tenant, key } = tenantWith(deferBucket(600, 2_000));
    await accounts.put(
      {
        tenant: parseTenantId(tenant),
        billingPeriod: { unit: 'month', anchorDay: 1, timeZone: 'UTC' },
        webhookUrl: receiver.url,
        webhookSecret: WEBHOOK_SECRET,
        price: { currency: 'EUR', baseFeeMicros: 0, includedUnits: 0, tiers: [{ unitPriceMicros: 1 }] },
      },
      Date.now(),
    );
    await exhaust(yoga, key);
    // when one export asks for a notice and another does not
    const asked = await post(yoga, key, { query: EXPORT }, { 'Idempotency-Key': 'notify-me', 'Tollgate-Notify': 'webhook' });
    expect(asked.status).toBe(202);
    const askedId = (await bodyOf(asked)).extensions?.job?.id ?? '';
    const quiet = await post(yoga, key, { query: EXPORT }, { 'Idempotency-Key': 'no-notice' });
    const quietId = (await bodyOf(quiet)).extensions?.job?.id ?? '';
    expect(await waitForJob(yoga, key, askedId, ['succeeded', 'failed', 'expired'])).toMatchObject({ status: 'succeeded' });
    expect(await waitForJob(yoga, key, quietId, ['succeeded', 'failed', 'expired'])).toMatchObject({ status: 'succeeded' });
    await env.client.workflow.getHandle(jobWorkflowId({ tenant, jobId: askedId })).result();
    await env.client.workflow.getHandle(jobWorkflowId({ tenant, jobId: quietId })).result();
    // then exactly one notice was processed, for the job that asked, signed, after one failed attempt
    const mine = receiver.processed.filter((notice) => notice.body['tenant'] === tenant);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({
      isSignatureValid: true,
      idempotencyKey: `job-${tenant}-${askedId}-finished`,
      body: { type: 'job.finished.v1', jobId: askedId, status: 'succeeded', actualCost: EXPORT_COST },
    });
    expect(receiver.requests.filter((notice) => notice.body['tenant'] === tenant).length).toBeGreaterThanOrEqual(1);
    // and the job records say so (a retry of the activity would send nothing)
    expect(await jobStore.get(parseTenantId(tenant), askedId)).toMatchObject({ isNotifyRequested: true, notification: 'delivered' });
    expect(await jobStore.get(parseTenantId(tenant), quietId)).toMatchObject({ isNotifyRequested: false, notification: null });
  });

  it('refuses a Tollgate-Notify header it does not know with 400, before any decision', async () => {
    const yoga = api();
    const { key } = tenantWith(deferBucket(600, 2_000));
    const response = await post(yoga, key, { query: EXPORT }, { 'Tollgate-Notify': 'email' });
    expect(response.status).toBe(400);
    expect(codeOf(await bodyOf(response))).toBe('INVALID_HEADER');
  });
});

describe('retrying a deferred request', () => {
  it('answers the job (202) even once the limit has room, so the operation never runs beside its job', async () => {
    // given a deferred job that waits 10 minutes between attempts, on a limit that frees up within about 2 s
    const yoga = api({ retryMinMs: 600_000, retryMaxMs: 600_000, ttlMs: 1_200_000 });
    const { tenant, key } = tenantWith(deferBucket(600, 2_000));
    await exhaust(yoga, key);
    const { response, id } = await deferExport(yoga, key, 'retry-me');
    expect(response.status).toBe(202);
    const callsAtDefer = store.resolverCalls;
    // when the client retries with the same Idempotency-Key until well after the limit has room again
    // (a different request, without the key, shows when it has)
    const statuses: number[] = [];
    const until = Date.now() + 30_000;
    let hasRoom = false;
    while (!hasRoom && Date.now() < until) {
      const retry = await deferExport(yoga, key, 'retry-me');
      statuses.push(retry.response.status);
      expect(retry.id).toBe(id);
      expect(retry.response.headers.get('Location')).toBe(`/jobs/${id}`);
      const probe = await bodyOf(await post(yoga, key, { query: '{ me { tenant } }' }));
      hasRoom = (probe.extensions?.cost?.limits.find((limit) => limit.id === 'heavy')?.remaining ?? 0) >= EXPORT_COST;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(hasRoom).toBe(true);
    const last = await deferExport(yoga, key, 'retry-me');
    statuses.push(last.response.status);
    // then every retry was the job, and nothing ran yet
    expect(statuses.every((status) => status === 202)).toBe(true);
    expect(store.resolverCalls).toBe(callsAtDefer);
    // and once woken the job runs once and is charged once
    await wakeDeferredJob(env.client, { tenant, jobId: id });
    const job = await waitForJob(yoga, key, id, ['succeeded', 'failed', 'expired']);
    expect(job.status).toBe('succeeded');
    expect(store.resolverCalls - callsAtDefer).toBe(1);
    const stored = await jobStore.get(parseTenantId(tenant), id);
    expect(await usageEvents(tenant, 'usage.reserved.v1', stored?.requestId ?? '')).toHaveLength(1);
    // a retry after it ran is still the job, now succeeded
    const after = await deferExport(yoga, key, 'retry-me');
    expect(after.response.status).toBe(202);
    expect((await bodyOf(after.response)).extensions?.job).toMatchObject({ id, status: 'succeeded' });
    expect(store.resolverCalls - callsAtDefer).toBe(1);
  });
});

describe('a job whose workflow was lost', () => {
  it('is restarted by a retry of its request, and still runs and is charged once', async () => {
    // given a deferred job whose workflow was terminated while it waited (its record still says queued)
    const yoga = api({ retryMinMs: 600_000, retryMaxMs: 600_000, ttlMs: 1_200_000 });
    const { tenant, key } = tenantWith(deferBucket(600, 6_000));
    await exhaust(yoga, key);
    const { response, id } = await deferExport(yoga, key, 'lost');
    expect(response.status).toBe(202);
    const handle = env.client.workflow.getHandle(jobWorkflowId({ tenant, jobId: id }));
    await handle.terminate('simulated loss');
    expect((await jobStore.get(parseTenantId(tenant), id))?.status).toBe('queued');
    const callsAtDefer = store.resolverCalls;
    // when the client retries the request (the limit is still spent, so it is deferred again)
    const retry = await deferExport(yoga, key, 'lost');
    // then it is the same job, running again, and once woken it runs once and is charged once
    expect(retry.response.status).toBe(202);
    expect(retry.id).toBe(id);
    expect((await env.client.workflow.getHandle(jobWorkflowId({ tenant, jobId: id })).describe()).status.name).toBe('RUNNING');
    const job = await waitFor(
      `job ${id} woken and succeeded`,
      async () => {
        await wakeDeferredJob(env.client, { tenant, jobId: id });
        const seen = await waitForJob(yoga, key, id, ['queued', 'running', 'succeeded', 'failed', 'expired']);
        return seen.status === 'succeeded' && seen;
      },
      { timeoutMs: 45_000, intervalMs: 200 },
    );
    expect(job.status).toBe('succeeded');
    expect(store.resolverCalls - callsAtDefer).toBe(1);
    expect(await usageEvents(tenant, 'usage.reserved.v1', (await jobStore.get(parseTenantId(tenant), id))?.requestId ?? '')).toHaveLength(
      1,
    );
    expect(await jobStore.openJobs(parseTenantId(tenant))).toBe(0);
  });
});

describe('a job while no API process polls its queue', () => {
  it('stays queued through the outage and runs once when a worker polls again', async () => {
    // given a task queue no worker polls (every API process is down)
    const outageQueue = `${taskQueue}-outage`;
    const yoga = api({ taskQueue: outageQueue });
    const { tenant, key } = tenantWith(deferBucket(600, 3_000));
    await exhaust(yoga, key);
    const { response, id } = await deferExport(yoga, key, 'outage');
    expect(response.status).toBe(202);
    const callsAtDefer = store.resolverCalls;
    // when the limit has long had room and a worker comes back (polling for the job, at least until it has run)
    await waitFor(
      'room for the export in the heavy limit',
      async () => {
        const probe = await bodyOf(await post(yoga, key, { query: '{ me { tenant } }' }));
        return (probe.extensions?.cost?.limits.find((limit) => limit.id === 'heavy')?.remaining ?? 0) >= EXPORT_COST;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    expect((await jobStore.get(parseTenantId(tenant), id))?.status).toBe('queued');
    const restarted = await createJobsWorker({
      connection: env.nativeConnection,
      namespace: config.temporal.namespace,
      taskQueue: outageQueue,
      deps: { decider: new RedisDecider(redis, { shardCount: SHARDS, clock: systemClock }), store: jobStore, executor: schemaExecutor },
    });
    const running = restarted.run();
    try {
      // then the job runs, once, and is charged once
      const job = await waitForJob(yoga, key, id, ['succeeded', 'failed', 'expired']);
      expect(job.status).toBe('succeeded');
    } finally {
      restarted.shutdown();
      await running;
    }
    expect(store.resolverCalls - callsAtDefer).toBe(1);
    expect(await usageEvents(tenant, 'usage.reserved.v1', (await jobStore.get(parseTenantId(tenant), id))?.requestId ?? '')).toHaveLength(
      1,
    );
  });
});

describe('a job whose run fails for good', () => {
  it('ends failed with EXECUTION_FAILED, keeps the admitted charge, and frees its queue place', async () => {
    // given a deferred operation whose executor breaks
    const yoga = api();
    const { tenant, key } = tenantWith(deferBucket(600, 3_000));
    const explode = 'mutation Explode { exportOrdersReport { id } }';
    expect((await post(yoga, key, { query: explode })).status).toBe(200);
    const response = await post(yoga, key, { query: explode }, { 'Idempotency-Key': 'boom' });
    expect(response.status).toBe(202);
    const id = (await bodyOf(response)).extensions?.job?.id ?? '';
    // when it is admitted and run
    const job = await waitForJob(yoga, key, id, ['succeeded', 'failed', 'expired']);
    // then it failed with a stable code, no result, the requested cost charged once, and the queue is empty
    expect(job).toMatchObject({ status: 'failed', errorCode: 'EXECUTION_FAILED', result: null, actualCost: null });
    const stored = await jobStore.get(parseTenantId(tenant), id);
    expect(await usageEvents(tenant, 'usage.reserved.v1', stored?.requestId ?? '')).toHaveLength(1);
    expect(await burstTokens(tenant)).toBe(10_000 - 2 * EXPORT_COST);
    expect(await jobStore.openJobs(parseTenantId(tenant))).toBe(0);
  });
});

describe('job status', () => {
  it("is visible to the job's tenant only: another tenant gets 404 (as for an unknown id) and null from job(id)", async () => {
    // given a job of tenant A, and tenant B
    const yoga = api({ ttlMs: 1_000 });
    const a = tenantWith(deferBucket(1, 3_600_000));
    const b = tenantWith(deferBucket(1, 3_600_000));
    await exhaust(yoga, a.key);
    const { response, id } = await deferExport(yoga, a.key, 'private');
    expect(response.status).toBe(202);
    // when each asks for it
    const own = await getJob(yoga, a.key, `/jobs/${id}`);
    const other = await getJob(yoga, b.key, `/jobs/${id}`);
    const unknown = await getJob(yoga, a.key, `/jobs/j-${'0'.repeat(32)}`);
    const anonymous = await getJob(yoga, null, `/jobs/${id}`);
    // then only A sees it
    expect(own.status).toBe(200);
    expect(((await own.json()) as { job: JobView }).job).toMatchObject({ id, operationName: 'Export', requestedCost: EXPORT_COST });
    expect(other.status).toBe(404);
    expect(unknown.status).toBe(404);
    expect(await other.json()).toEqual(await unknown.json());
    expect(anonymous.status).toBe(401);
    const viaGraphQL = await bodyOf(
      await post(yoga, b.key, { query: 'query J($id: ID!) { job(id: $id) { id status } }', variables: { id } }),
    );
    expect(viaGraphQL.errors).toBeUndefined();
    expect(viaGraphQL.data?.['job']).toBeNull();
    await waitForJob(yoga, a.key, id, ['expired']);
  });
});

describe('the per-tenant job queue', () => {
  it('answers 429 once the tenant has its cap of unfinished jobs, joins a resubmitted job, and admits again when jobs finish', async () => {
    // given a cap of 2 unfinished jobs and a defer limit that does not free up
    const yoga = api({ maxQueuedPerTenant: 2, ttlMs: 2_000 });
    const { tenant, key } = tenantWith(deferBucket(1, 3_600_000));
    await exhaust(yoga, key);
    const first = await deferExport(yoga, key, 'q-1');
    const second = await deferExport(yoga, key, 'q-2');
    expect([first.response.status, second.response.status]).toEqual([202, 202]);
    const callsBefore = store.resolverCalls;
    // when a third job is deferred
    const third = await post(yoga, key, { query: EXPORT }, { 'Idempotency-Key': 'q-3' });
    // then it is refused with 429, the queue-full reason and a Retry-After; nothing runs
    expect(third.status).toBe(429);
    expect(third.headers.get('Retry-After')).toMatch(/^\d+$/);
    const body = await bodyOf(third);
    expect(codeOf(body)).toBe('QUOTA_EXHAUSTED');
    expect(body.errors?.[0]?.extensions?.['reason']).toBe('JOB_QUEUE_FULL');
    expect(store.resolverCalls).toBe(callsBefore);
    // a resubmission of a queued job joins it (no new place needed)
    const again = await deferExport(yoga, key, 'q-1');
    expect(again.response.status).toBe(202);
    expect(again.id).toBe(first.id);
    expect(await jobStore.openJobs(parseTenantId(tenant))).toBe(2);
    // and once both expire, the queue has room again
    await waitForJob(yoga, key, first.id, ['expired']);
    await waitForJob(yoga, key, second.id, ['expired']);
    expect(await jobStore.openJobs(parseTenantId(tenant))).toBe(0);
    const later = await deferExport(yoga, key, 'q-4');
    expect(later.response.status).toBe(202);
    await waitForJob(yoga, key, later.id, ['expired']);
  });
});

describe('waking a job', () => {
  it('runs a waiting job as soon as it is woken (its retry wait is 10 minutes), and reports a finished job as not running', async () => {
    // given a job that waits 10 minutes between attempts, on a defer limit that frees up within about a second
    const yoga = api({ retryMinMs: 600_000, retryMaxMs: 600_000, ttlMs: 1_200_000 });
    const { tenant, key } = tenantWith(deferBucket(600, 1_000));
    await exhaust(yoga, key);
    const { response, id } = await deferExport(yoga, key, 'wake-me');
    expect(response.status).toBe(202);
    // when it is woken (repeatedly, as a quota reset would) until it has run
    const job = await waitFor(
      `job ${id} woken and succeeded`,
      async () => {
        // (false once the job has finished between two polls)
        await wakeDeferredJob(env.client, { tenant, jobId: id });
        const reply = await getJob(yoga, key, `/jobs/${id}`);
        const seen = ((await reply.json()) as { job: JobView }).job;
        return seen.status === 'succeeded' && seen;
      },
      { timeoutMs: 45_000, intervalMs: 200 },
    );
    // then it ran long before its next scheduled attempt
    expect(job.status).toBe('succeeded');
    await env.client.workflow.getHandle(jobWorkflowId({ tenant, jobId: id })).result();
    expect(await wakeDeferredJob(env.client, { tenant, jobId: id })).toBe(false);
    finishedWorkflows.push({ workflowId: jobWorkflowId({ tenant, jobId: id }), fixture: 'job-woken.json' });
  });
});

describe('the job workflow is deterministic', () => {
  it('replays the histories of the jobs that finished in this file, and the recorded fixtures', async () => {
    // given the histories of this run's finished jobs (succeeded, expired, woken)
    expect(finishedWorkflows.map((entry) => entry.fixture)).toEqual(['job-succeeded.json', 'job-expired.json', 'job-woken.json']);
    const histories = await Promise.all(
      finishedWorkflows.map(async (entry) => ({ ...entry, history: await env.client.workflow.getHandle(entry.workflowId).fetchHistory() })),
    );
    // TOLLGATE_CAPTURE_HISTORIES=1 rewrites the fixtures from this run
    for (const entry of histories) captureHistory(entry.fixture, entry.history);
    const fixtures = recordedHistories(/^job-/);
    expect(fixtures.length).toBeGreaterThanOrEqual(3);
    // when every history is replayed against the current workflow code, then none fails
    expect(await replayFailures([...histories, ...fixtures])).toEqual([]);
  });
});
