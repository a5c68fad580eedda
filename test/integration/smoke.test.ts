/**
 * The parts talk: a Lua script appends to a Redis stream; the ledger writes
 * DynamoDB Local exactly once; a graphql-yoga request answers through Redis.
 * (Temporal workflows writing the ledger: metering-workflow.test.ts.)
 */
import { randomBytes } from 'node:crypto';
import { Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisDecider, appendUsage, createDeciderRedis, shardOf, usageStreamKey, type DeciderRedis } from '../../src/decider/index.js';
import { DynamoLedgerStore, createDynamoClient } from '../../src/metering/index.js';
import { createApi, type ApiDeps } from '../../src/graphql/app.js';
import { createDemoSetup, demoSurface } from '../../src/graphql/demo/index.js';
import { createLogger, parseEventId, parseTenantId, systemClock } from '../../src/shared/index.js';
import { closeAfterAll } from '../support/teardown.js';
import { testConfig, uniqueTenant } from '../support/stack.js';

const config = testConfig();
const logger = createLogger({ level: 'silent', name: 'test' });
let redis: DeciderRedis;

beforeAll(async () => {
  redis = createDeciderRedis({ url: config.redis.url, commandTimeoutMs: 1_000 });
  await redis.connect();
});

closeAfterAll(() => [redis]);

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

describe('DynamoDB: the ledger posts each entry exactly once', () => {
  const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
  const ledger = new DynamoLedgerStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });

  afterAll(() => {
    dynamo.destroy();
  });

  it('posts each entry exactly once, even when the same entries are posted again', async () => {
    // given
    const tenant = parseTenantId(uniqueTenant());
    const periodStart = '2026-11-01T00:00:00.000Z';
    const entries = [
      { tenant, periodStart, eventId: parseEventId('req.1'), kind: 'usage.reserved.v1', amount: 40, operation: 'listProducts' },
      { tenant, periodStart, eventId: parseEventId('req.2'), kind: 'usage.reserved.v1', amount: 2, operation: 'getProduct' },
    ];
    // when
    const first = await ledger.postEntries(entries);
    const again = await ledger.postEntries(entries);
    // then
    expect([first.posted, first.duplicates, first.conflicts]).toEqual([2, 0, []]);
    expect([again.posted, again.duplicates, again.conflicts]).toEqual([0, 2, []]);
    expect(await ledger.getBalance({ tenant, periodStart })).toEqual({ amount: 42, entries: 2 });
  });

  it('refuses a conflicting entry with LEDGER_CONFLICT without moving the balance', async () => {
    // given an entry already in the ledger
    const tenant = parseTenantId(uniqueTenant());
    const periodStart = '2026-11-01T00:00:00.000Z';
    const entry = { tenant, periodStart, eventId: parseEventId('req.1'), kind: 'usage.reserved.v1', amount: 5, operation: 'op' };
    await ledger.postEntry(entry);
    // when different data is posted under the same event id
    const conflicting = ledger.postEntry({ ...entry, amount: 6 });
    // then it fails with the non-retryable LEDGER_CONFLICT and the balance is unchanged
    await expect(conflicting).rejects.toMatchObject({ code: 'LEDGER_CONFLICT', retryable: false });
    expect(await ledger.getBalance({ tenant, periodStart })).toEqual({ amount: 5, entries: 1 });
  });
});

describe('GraphQL: a yoga request answers', () => {
  const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
  const temporal = Connection.lazy({ address: config.temporal.address });

  const demo = createDemoSetup();
  const demoDeps = (client: DeciderRedis, version: string): Pick<ApiDeps, 'decider' | 'keyStore' | 'plans' | 'surface'> => ({
    decider: new RedisDecider(client, { shardCount: config.redis.shardCount, clock: systemClock }),
    keyStore: demo.keyStore,
    plans: demo.plans,
    surface: demoSurface({ store: demo.store, version, redis: client }),
  });

  afterAll(async () => {
    dynamo.destroy();
    await temporal.close();
  });

  it('answers a query through the decider clock and reports ready', async () => {
    const api = createApi({
      redis,
      dynamo,
      tablePrefix: config.dynamodb.tablePrefix,
      temporal,
      logger,
      version: 'test',
      ...demoDeps(redis, 'test'),
    });
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
    const api = createApi({
      redis: deadRedis,
      dynamo,
      tablePrefix: config.dynamodb.tablePrefix,
      temporal,
      logger,
      version: 't',
      ...demoDeps(deadRedis, 't'),
    });
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
