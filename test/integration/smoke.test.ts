/**
 * End to end, the parts talk: a Lua script appends to a Redis stream; a
 * Temporal workflow on the real dev server runs an activity that writes
 * DynamoDB Local; a graphql-yoga request answers through Redis.
 */
import { randomBytes } from 'node:crypto';
import { Connection } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisDecider, appendUsage, createDeciderRedis, shardOf, usageStreamKey, type DeciderRedis } from '../../src/decider/index.js';
import { DynamoLedgerStore, createDynamoClient } from '../../src/metering/index.js';
import { createApi, createDemoSetup, type ApiDeps } from '../../src/graphql/index.js';
import { postLedgerBatch } from '../../src/workflows/index.js';
import { createLogger, parseEventId, parseTenantId, systemClock } from '../../src/shared/index.js';
import { testConfig, uniqueTenant } from '../support/stack.js';
import { runInProcessWorker } from '../support/worker-process.js';
import { quietTemporalRuntime } from '../support/temporal.js';

const config = testConfig();
const logger = createLogger({ level: 'silent', name: 'test' });
let redis: DeciderRedis;

beforeAll(async () => {
  redis = createDeciderRedis({ url: config.redis.url, commandTimeoutMs: 1_000 });
  await redis.connect();
});

afterAll(() => {
  redis.disconnect();
});

describe('Redis: a Lua script appends to the shard stream', () => {
  it('appends once per event id, stamped with Redis TIME', async () => {
    // given
    const tenant = parseTenantId(uniqueTenant());
    const eventId = parseEventId(`ev-${randomBytes(4).toString('hex')}`);
    const stream = usageStreamKey(shardOf(tenant, config.redis.shardCount));
    const input = { tenant, eventId, fields: { tenant, cost: '7' }, shardCount: config.redis.shardCount };
    // when the same event is appended twice (a retry)
    const first = await appendUsage(redis, input);
    const second = await appendUsage(redis, input);
    // then one entry exists, and the retry reports the first entry's id
    expect(first.isNew).toBe(true);
    expect(second).toMatchObject({ isNew: false, streamId: first.streamId });
    const entries = await redis.xrange(stream, first.streamId, first.streamId);
    expect(entries).toEqual([[first.streamId, ['tenant', tenant, 'cost', '7', 'time_ms', String(first.nowMs)]]]);
    const [seconds] = await redis.time();
    expect(Math.abs(Number(seconds) * 1000 - first.nowMs)).toBeLessThan(60_000);
  });
});

describe('Temporal + DynamoDB: a workflow activity writes the ledger', () => {
  let env: TestWorkflowEnvironment;
  const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
  const ledger = new DynamoLedgerStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
  const taskQueue = `smoke-${randomBytes(4).toString('hex')}`;
  let stopWorker: () => Promise<void>;

  beforeAll(async () => {
    quietTemporalRuntime();
    env = await TestWorkflowEnvironment.createFromExistingServer({
      address: config.temporal.address,
      namespace: config.temporal.namespace,
    });
    stopWorker = await runInProcessWorker({ config, connection: env.nativeConnection, taskQueue });
  });

  afterAll(async () => {
    await stopWorker();
    await env.teardown();
    dynamo.destroy();
  });

  it('posts each entry exactly once, even when the batch is posted again under a new id', async () => {
    // given
    const tenant = uniqueTenant();
    const periodStart = '2026-11-01T00:00:00.000Z';
    const entries = [
      { tenant, periodStart, eventId: 'req.1', kind: 'usage.reserved.v1', amount: 40, operation: 'listProducts' },
      { tenant, periodStart, eventId: 'req.2', kind: 'usage.reserved.v1', amount: 2, operation: 'getProduct' },
    ];
    // when
    const first = await postLedgerBatch(env.client, { tenant, batchId: 'batch-a', entries, taskQueue });
    const again = await postLedgerBatch(env.client, { tenant, batchId: 'batch-b', entries, taskQueue });
    // then
    expect(first).toEqual({ posted: 2, duplicates: 0 });
    expect(again).toEqual({ posted: 0, duplicates: 2 });
    expect(await ledger.getBalance({ tenant: parseTenantId(tenant), periodStart })).toEqual({ amount: 42, entries: 2 });
  });

  it('fails a conflicting entry without retrying and without moving the balance', async () => {
    // given an entry already in the ledger
    const tenant = uniqueTenant();
    const periodStart = '2026-11-01T00:00:00.000Z';
    const entry = { tenant, periodStart, eventId: 'req.1', kind: 'usage.reserved.v1', amount: 5, operation: 'op' };
    await postLedgerBatch(env.client, { tenant, batchId: 'b1', entries: [entry], taskQueue });
    // when different data is posted under the same event id
    const conflicting = postLedgerBatch(env.client, {
      tenant,
      batchId: 'b2',
      entries: [{ ...entry, amount: 6 }],
      taskQueue,
    });
    // then the workflow fails with LEDGER_CONFLICT and the balance is unchanged
    await expect(conflicting).rejects.toBeInstanceOf(WorkflowFailedError);
    await conflicting.catch((error: WorkflowFailedError) => {
      const cause = error.cause?.cause as { type?: string } | undefined;
      expect(cause?.type).toBe('LEDGER_CONFLICT');
    });
    expect(await ledger.getBalance({ tenant: parseTenantId(tenant), periodStart })).toEqual({ amount: 5, entries: 1 });
  });
});

describe('GraphQL: a yoga request answers', () => {
  const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
  const temporal = Connection.lazy({ address: config.temporal.address });

  const demo = createDemoSetup();
  const demoDeps = (client: DeciderRedis): Pick<ApiDeps, 'decider' | 'keyStore' | 'plans' | 'store'> => ({
    decider: new RedisDecider(client, { shardCount: config.redis.shardCount, clock: systemClock }),
    keyStore: demo.keyStore,
    plans: demo.plans,
    store: demo.store,
  });

  afterAll(async () => {
    dynamo.destroy();
    await temporal.close();
  });

  it('answers a query through the decider clock and reports ready', async () => {
    const api = createApi({ redis, dynamo, tablePrefix: config.dynamodb.tablePrefix, temporal, logger, version: 'test', ...demoDeps(redis) });
    const response = await api.fetch('http://tollgate.test/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${demo.keys[0]?.key ?? ''}` },
      body: JSON.stringify({ query: '{ status { version deciderTimeMs } }' }),
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { data: { status: { version: string; deciderTimeMs: string } } };
    expect(body.data.status.version).toBe('test');
    expect(body.data.status.deciderTimeMs).toMatch(/^\d{13}$/);

    const ready = await api.fetch('http://tollgate.test/ready');
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({
      isReady: true,
      checks: { redis: { isOk: true }, dynamodb: { isOk: true }, temporal: { isOk: true } },
    });
  });

  it('reports unready, naming Redis, when the decider cannot run its script', async () => {
    // given a Redis client pointed at a port where nothing listens
    const deadRedis = createDeciderRedis({ url: 'redis://127.0.0.1:1', commandTimeoutMs: 100, connectTimeoutMs: 100 });
    deadRedis.on('error', () => undefined);
    const api = createApi({ redis: deadRedis, dynamo, tablePrefix: config.dynamodb.tablePrefix, temporal, logger, version: 't', ...demoDeps(deadRedis) });
    // when
    const ready = await api.fetch('http://tollgate.test/ready');
    // then
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({
      isReady: false,
      checks: { redis: { isOk: false, code: 'REDIS_UNAVAILABLE' }, dynamodb: { isOk: true } },
    });
    deadRedis.disconnect();
  });
});
