/**
 * The GraphQL hot path over HTTP (yoga.fetch) against the real Redis:
 * exactness under a parallel burst, refunds from returned list lengths, every
 * cost bypass, batches, idempotency, tenant isolation, soft / shadow / defer
 * limits, quotes, and the limiter's own protection (no Redis work for unknown
 * keys or hostile ids, no resolver or event for a 429, TTL on every key).
 */
import { randomBytes } from 'node:crypto';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisDecider, bucketKey, connectDeciderRedis, shardOf, usageStreamKey, type DeciderRedis } from '../../src/decider/index.js';
import { decodeBucketState } from '../../src/decider/bucket-state.js';
import { compileRequest } from '../../src/decider/compile.js';
import { KEY_PATTERN } from '../../src/decider/keys.js';
import { DynamoResponseStore, responsesTableName } from '../../src/graphql/index.js';
import { createDynamoClient } from '../../src/metering/index.js';
import { DependencyError, parseEventId, parseKeyId, parseLimitId, parseTenantId, systemClock } from '../../src/shared/index.js';
import { closeAfterAll } from '../support/teardown.js';
import { CountingDecider, bodyOf, codeOf, plan, quota, slowBucket, testApp, type TestApp } from '../support/graphql.js';
import { testStack, uniqueTenant } from '../support/stack.js';
import { streamEvents } from '../support/usage-stream.js';

const SHARDS = 16;
let redis: DeciderRedis;
let decider: CountingDecider;

beforeAll(async () => {
  redis = await connectDeciderRedis({ url: testStack().redisUrl, commandTimeoutMs: 5_000 });
  decider = new CountingDecider(new RedisDecider(redis, { shardCount: SHARDS, clock: systemClock }));
});

closeAfterAll(() => [redis]);

/** Units left in a tenant's key's token bucket, straight from Redis. */
async function bucketTokens(tenant: string, keyId = 'k1', limitId = 'burst'): Promise<number> {
  const key = bucketKey({
    shard: shardOf(parseTenantId(tenant), SHARDS),
    tenant: parseTenantId(tenant),
    limitId: parseLimitId(limitId),
    subject: { scope: 'apiKey', keyId: parseKeyId(keyId) },
  });
  const state = await redis.getBuffer(key);
  if (state === null) return Number.NaN;
  const decoded = decodeBucketState('token-bucket', state);
  return decoded.kind === 'token-bucket' ? decoded.tokens : Number.NaN;
}

/** Every event of the tenant's shard stream, whoever's, after the entry id `after` (exclusive) when given. */
async function shardEvents(tenant: string, after?: string): Promise<Record<string, string>[]> {
  const entries = streamEvents(
    await redis.xrange(usageStreamKey(shardOf(parseTenantId(tenant), SHARDS)), after === undefined ? '-' : `(${after}`, '+'),
  );
  return entries.map(
    ([, fields]) =>
      Object.fromEntries(Array.from({ length: fields.length / 2 }, (_, i) => [fields[2 * i], fields[2 * i + 1]])) as Record<string, string>,
  );
}

/** The id of the last entry of the tenant's shard stream (`0-0` when it is empty). */
async function lastEventId(tenant: string): Promise<string> {
  const [last] = await redis.xrevrange(usageStreamKey(shardOf(parseTenantId(tenant), SHARDS)), '+', '-', 'COUNT', 1);
  return last?.[0] ?? '0-0';
}

async function tenantEvents(tenant: string): Promise<Record<string, string>[]> {
  return (await shardEvents(tenant)).filter((event) => event['tenant'] === tenant);
}

async function tenantKeys(tenant: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `*:t:${tenant}:*`, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys;
}

/** 1 + 6 × 1 = 7 units, and the catalog always returns the 6 items asked for. */
const COST_7 = '{ products(first: 6) { nodes { id } } }';

function app(limits: Parameters<typeof plan>[1], maxCostPerOperation = 10_000): { app: TestApp; tenant: string; key: string } {
  const tenant = uniqueTenant('g');
  const built = testApp({ decider, plans: [plan('p', limits, maxCostPerOperation)] });
  return { app: built, tenant, key: built.keyFor(tenant, 'p') };
}

describe('exactness', () => {
  it('splits a whale plan over sub-shards: each part exact, the tenant never over its limit', async () => {
    // given a plan split over 4 sub-shards with a bucket of 100 (parts of 25) and an operation of cost 7
    const tenant = uniqueTenant('whale');
    const whale = { ...plan('whale', [slowBucket(100)]), subShards: 4 };
    const api = testApp({ decider, plans: [whale] });
    const key = api.keyFor(tenant, 'whale');
    // when 40 arrive at once
    const responses = await Promise.all(Array.from({ length: 40 }, () => api.post({ query: COST_7 }, { key })));
    const admitted = responses.filter((response) => response.status === 200).length;
    expect(responses.every((response) => response.status === 200 || response.status === 429)).toBe(true);
    // then the tenant's state lives in per-part keys, and what the parts took is exactly what was admitted
    const keys = await redis.keys(`*:t:${tenant}:*`);
    const bucketKeys = keys.filter((name) => name.includes(':b:v1:burst'));
    expect(bucketKeys.length).toBeGreaterThan(1);
    expect(keys.every((name) => /:t:[a-z0-9-]+:u:[0-3]:/.test(name))).toBe(true);
    let taken = 0;
    for (const name of bucketKeys) {
      const state = await redis.getBuffer(name);
      const decoded = state === null ? undefined : decodeBucketState('token-bucket', state);
      if (decoded?.kind !== 'token-bucket') throw new Error(`no bucket state at ${name}`);
      // each part starts with 25 and never goes below 0
      expect(decoded.tokens).toBeGreaterThanOrEqual(0);
      taken += 25 - decoded.tokens;
    }
    expect(taken).toBe(7 * admitted);
    // never more than the whole limit allows
    expect(admitted).toBeLessThanOrEqual(Math.floor(100 / 7));
  });

  it('admits exactly floor(L / c) of a parallel burst; headers and extensions.cost agree with the bucket', async () => {
    // given a bucket of 100 units and an operation of cost 7
    const { app: api, tenant, key } = app([slowBucket(100)]);
    // when 40 arrive at once
    const responses = await Promise.all(Array.from({ length: 40 }, () => api.post({ query: COST_7 }, { key })));
    const bodies = await Promise.all(responses.map(bodyOf));
    // then exactly 14 are served and 26 refused
    const ok = responses.map((response, i) => ({ response, body: bodies[i] })).filter(({ response }) => response.status === 200);
    const refused = responses.map((response, i) => ({ response, body: bodies[i] })).filter(({ response }) => response.status === 429);
    expect(ok).toHaveLength(14);
    expect(refused).toHaveLength(26);
    // every admitted response reports a distinct remaining 93, 86, ..., 2, in the header and the body
    const remaining = ok.map(({ response, body }) => {
      const fromBody = body?.extensions?.cost?.limits[0]?.remaining;
      expect(response.headers.get('RateLimit')).toBe(
        `"burst";r=${fromBody};t=${Math.ceil((body?.extensions?.cost?.limits[0]?.resetMs ?? 0) / 1000)}`,
      );
      expect(response.headers.get('RateLimit-Policy')).toBe('"burst";q=100;w=360000');
      expect(body?.extensions?.cost).toMatchObject({
        requested: 7,
        actual: 7,
        refunded: 0,
        throttleStatus: { maximumAvailable: 100, currentlyAvailable: fromBody },
      });
      return fromBody;
    });
    expect(remaining.sort((a, b) => (b ?? 0) - (a ?? 0))).toEqual(Array.from({ length: 14 }, (_, i) => 100 - 7 * (i + 1)));
    // refusals carry the code, the wait and a Retry-After that covers it
    for (const { response, body } of refused) {
      expect(codeOf(body as never)).toBe('RATE_LIMITED');
      const retryAfterMs = body?.errors?.[0]?.extensions?.['retryAfterMs'] as number;
      expect(retryAfterMs).toBeGreaterThan(0);
      expect(Number(response.headers.get('Retry-After'))).toBeGreaterThanOrEqual(Math.ceil(retryAfterMs / 1000));
      expect(body?.data).toBeUndefined();
    }
    // and the bucket holds what the last admitted response said
    expect(await bucketTokens(tenant)).toBe(2);
  });
});

describe('actual cost', () => {
  it('charges an operation priced for first: 50 that returns 3 items for those 3', async () => {
    // given
    const { app: api, tenant, key } = app([slowBucket(1_000)]);
    // when the rare category (3 products) is asked for 50
    const body = await bodyOf(
      await api.post({ query: '{ products(first: 50, category: "c-rare") { edges { node { name } } } }' }, { key }),
    );
    // then 101 were reserved, 7 charged, 94 refunded, and the bucket shows it
    expect(body.extensions?.cost).toMatchObject({ requested: 101, actual: 7, refunded: 94, throttleStatus: { currentlyAvailable: 993 } });
    expect(await bucketTokens(tenant)).toBe(993);
    const settled = (await tenantEvents(tenant)).find((event) => event['type'] === 'usage.settled.v1');
    expect(settled).toMatchObject({ requested: '101', actual: '7' });
  });

  it('prices first from the variables', async () => {
    const { app: api, key } = app([slowBucket(1_000)]);
    const body = await bodyOf(
      await api.post({ query: 'query Q($n: Int) { products(first: $n) { nodes { id } } }', variables: { n: 40 } }, { key }),
    );
    expect(body.extensions?.cost).toMatchObject({ requested: 41, actual: 41 });
  });
});

describe('cost bypass attempts all fail', () => {
  const refusedBeforeDecider = async (body: unknown, status: number, code: string, headers: Record<string, string> = {}): Promise<void> => {
    const { app: api, key } = app([slowBucket(100_000)], 5_000);
    const before = decider.decides.length;
    const response = await api.post(body, { key, headers });
    expect(response.status).toBe(status);
    expect(codeOf(await bodyOf(response))).toBe(code);
    expect(decider.decides.length).toBe(before);
  };

  it.each([
    [
      'a negative first beside an expensive sibling',
      { query: '{ a: products(first: -1000000) { nodes { id } } b: products(first: 1000) { nodes { id } } }' },
      'INVALID_SLICING_ARGUMENT',
    ],
    ['a huge first', { query: '{ products(first: 2147483647) { nodes { id } } }' }, 'INVALID_SLICING_ARGUMENT'],
    [
      'a huge first in a variable',
      { query: 'query Q($n: Int) { products(first: $n) { nodes { id } } }', variables: { n: 100_000 } },
      'INVALID_SLICING_ARGUMENT',
    ],
    [
      'alias amplification past the maximum',
      { query: `{ ${Array.from({ length: 6 }, (_, i) => `a${i}: products(first: 1000) { nodes { id } }`).join(' ')} }` },
      'COST_EXCEEDS_MAXIMUM',
    ],
    [
      'nested lists past the maximum',
      { query: '{ products(first: 100) { nodes { related(first: 100) { id } } } }' },
      'COST_EXCEEDS_MAXIMUM',
    ],
    ['an alias flood', { query: `{ ${Array.from({ length: 40 }, (_, i) => `a${i}: me { tenant }`).join(' ')} }` }, 'ALIAS_LIMIT_EXCEEDED'],
    [
      'deep nesting',
      { query: `{ product(id: "p-0001") { ${'related(first: 1) { '.repeat(20)}id${' }'.repeat(20)} } }` },
      'DEPTH_LIMIT_EXCEEDED',
    ],
    ['a token flood', { query: `{ ${'__typename '.repeat(6_000)} }` }, 'TOKEN_LIMIT_EXCEEDED'],
    [
      'fragments that explode when expanded',
      {
        query: `${Array.from({ length: 30 }, (_, i) => `fragment F${i} on Product { ...F${i + 1} ...F${i + 1} }`).join(' ')} fragment F30 on Product { id } { product(id: "x") { ...F0 } }`,
      },
      'NODE_LIMIT_EXCEEDED',
    ],
    [
      'an introspection flood',
      {
        query: `{ ${Array.from({ length: 3 }, (_, i) => `s${i}: __schema { types { fields { type { fields { type { name } } } } } }`).join(' ')} }`,
      },
      'COST_EXCEEDS_MAXIMUM',
    ],
  ])('%s → 400 before the decider', async (_name, body, code) => {
    await refusedBeforeDecider(body, 400, code);
  });

  it('a fragment cycle is refused by validation before the decider', async () => {
    const { app: api, key } = app([slowBucket(1_000)]);
    const before = decider.decides.length;
    const response = await api.post(
      { query: 'fragment A on Product { ...B } fragment B on Product { ...A } { product(id: "x") { ...A } }' },
      { key },
    );
    expect(codeOf(await bodyOf(response))).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(decider.decides.length).toBe(before);
  });

  it('prices a fragment spread at every use', async () => {
    const { app: api, key } = app([slowBucket(1_000)]);
    const query =
      'fragment P on ProductConnection { nodes { reviews(first: 5) { rating } } } { a: products(first: 10) { ...P } b: products(first: 10) { ...P } }';
    const body = await bodyOf(await api.post({ query }, { key }));
    expect(body.extensions?.cost?.requested).toBe(2 * (1 + 10 * (1 + 5)));
  });

  it('charges every operation of a batch, each with its own decision, and refuses oversized batches', async () => {
    // given
    const { app: api, tenant, key } = app([slowBucket(1_000)]);
    const before = decider.decides.length;
    // when three operations come in one request
    const response = await api.post([{ query: COST_7 }, { query: COST_7 }, { query: '{ products(first: 2) { nodes { id } } }' }], { key });
    const bodies = (await response.json()) as { extensions: { cost: { requested: number; receipt: string } } }[];
    // then each was decided and charged
    expect(bodies.map((body) => body.extensions.cost.requested)).toEqual([7, 7, 3]);
    expect(new Set(bodies.map((body) => body.extensions.cost.receipt)).size).toBe(3);
    expect(decider.decides.length - before).toBe(3);
    expect(await bucketTokens(tenant)).toBe(1_000 - 17);
    // and a batch above the limit is refused whole
    const tooMany = await api.post(
      Array.from({ length: 11 }, () => ({ query: COST_7 })),
      { key },
    );
    expect(tooMany.status).toBe(413);
    expect(codeOf(await bodyOf(tooMany))).toBe('BATCH_LIMIT_EXCEEDED');
  });
});

describe('idempotency', () => {
  const dynamo = createDynamoClient({ endpoint: testStack().dynamodbEndpoint, region: testStack().dynamodbRegion });
  const responses = new DynamoResponseStore(dynamo, { tablePrefix: testStack().tablePrefix });
  afterAll(() => dynamo.destroy());

  /** An app whose Idempotency-Key retries get the first response back (the store `npm start` uses). */
  function replayingApp(limits: Parameters<typeof plan>[1]): { app: TestApp; tenant: string; key: string } {
    const tenant = uniqueTenant('g');
    const built = testApp({ decider, plans: [plan('p', limits)], tollgate: { responses } });
    return { app: built, tenant, key: built.keyFor(tenant, 'p') };
  }

  it('answers a retry with the first response, charged and run once; another operation under that key is a new request', async () => {
    // given a query sent twice with one Idempotency-Key
    const { app: api, tenant, key } = replayingApp([slowBucket(1_000)]);
    const first = await api.post({ query: COST_7 }, { key, headers: { 'Idempotency-Key': 'order-42' } });
    const second = await api.post({ query: COST_7 }, { key, headers: { 'Idempotency-Key': 'order-42' } });
    const [a, b] = [await bodyOf(first), await bodyOf(second)];
    // then the retry is the same body, marked as replayed, and only one charge and one event exist
    expect(first.status).toBe(200);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    expect(second.status).toBe(200);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(b).toEqual(a);
    expect(await bucketTokens(tenant)).toBe(993);
    expect((await tenantEvents(tenant)).filter((event) => event['type'] === 'usage.reserved.v1')).toHaveLength(1);
    // and the kept response is one DynamoDB item that expires with the decider's record (24 h), nothing in Redis
    const kept = await dynamo.send(
      new ScanCommand({
        TableName: responsesTableName(testStack().tablePrefix),
        FilterExpression: 'begins_with(pk, :p)',
        ExpressionAttributeValues: { ':p': { S: `resp#${tenant}#` } },
      }),
    );
    expect(kept.Items).toHaveLength(1);
    const expiresInS = Number(kept.Items?.[0]?.['expiresAt']?.N) - Date.now() / 1000;
    expect(expiresInS).toBeGreaterThan(86_000);
    expect(expiresInS).toBeLessThanOrEqual(86_401);
    for (const name of await tenantKeys(tenant)) expect(name).toMatch(KEY_PATTERN);
    // the same key for a different operation is not a free replay
    const other = await api.post({ query: '{ products(first: 2) { nodes { id } } }' }, { key, headers: { 'Idempotency-Key': 'order-42' } });
    expect(other.status).toBe(200);
    expect(other.headers.get('idempotent-replayed')).toBeNull();
    expect(await bucketTokens(tenant)).toBe(990);
  });

  it('runs a mutation once when 20 retries with one key race: each gets its first response or a 409 to retry, never a second order', async () => {
    // given 20 concurrent placeOrder requests with one Idempotency-Key
    const { app: api, tenant, key } = replayingApp([slowBucket(1_000)]);
    const productId = api.store.products[0]?.id ?? '';
    const body = {
      query: 'mutation Buy($items: [OrderItemInput!]!) { placeOrder(items: $items) { id } }',
      variables: { items: [{ productId, quantity: 1 }] },
    };
    const responses = await Promise.all(Array.from({ length: 20 }, () => api.post(body, { key, headers: { 'Idempotency-Key': 'buy-1' } })));
    // then exactly one order exists and one charge was taken
    expect(api.store.ordersOf(tenant)).toHaveLength(1);
    const orderId = api.store.ordersOf(tenant)[0]?.id;
    expect((await tenantEvents(tenant)).filter((event) => event['type'] === 'usage.reserved.v1')).toHaveLength(1);
    for (const response of responses) {
      const parsed = await bodyOf(response);
      if (response.status === 200) {
        expect((parsed.data as { placeOrder: { id: string } }).placeOrder.id).toBe(orderId);
      } else {
        // a retry that overtook the first attempt: nothing ran, try again shortly
        expect(response.status).toBe(409);
        expect(codeOf(parsed)).toBe('IDEMPOTENCY_KEY_REPLAYED');
        expect(response.headers.get('retry-after')).toBe('1');
      }
    }
    // and a later retry always gets the order back, without placing another
    const later = await api.post(body, { key, headers: { 'Idempotency-Key': 'buy-1' } });
    expect(later.status).toBe(200);
    expect(((await bodyOf(later)).data as { placeOrder: { id: string } }).placeOrder.id).toBe(orderId);
    expect(api.store.ordersOf(tenant)).toHaveLength(1);
    const replays = await api.metrics.registry.getSingleMetric('tollgate_idempotent_replays_total')?.get();
    const counted = (outcome: string): number => replays?.values.find((value) => value.labels['outcome'] === outcome)?.value ?? 0;
    expect(counted('replayed') + counted('unavailable')).toBe(20);
    expect(counted('replayed')).toBe(responses.filter((response) => response.status === 200).length);
  });

  it('keeps a response once, and reads it as gone from its expiry on (before DynamoDB TTL deletes it)', async () => {
    const tenant = parseTenantId(uniqueTenant('g'));
    const requestId = parseEventId('i-exp.0.abc');
    const nowMs = Date.now();
    expect(await responses.save({ tenant, requestId, result: { data: { a: 1 } }, ttlMs: 10_000, nowMs })).toBe('stored');
    expect(await responses.save({ tenant, requestId, result: { data: { a: 2 } }, ttlMs: 10_000, nowMs })).toBe('exists');
    expect(await responses.load({ tenant, requestId, nowMs: nowMs + 5_000 })).toMatchObject({ result: { data: { a: 1 } } });
    expect(await responses.load({ tenant, requestId, nowMs: nowMs + 11_000 })).toBeUndefined();
    // another tenant asking for the same request id finds nothing
    expect(await responses.load({ tenant: parseTenantId(uniqueTenant('g')), requestId, nowMs })).toBeUndefined();
    const big = new DynamoResponseStore(dynamo, { tablePrefix: testStack().tablePrefix, maxBytes: 100 });
    expect(
      await big.save({ tenant, requestId: parseEventId('i-big.0.abc'), result: { data: { text: 'x'.repeat(200) } }, ttlMs: 10_000, nowMs }),
    ).toBe('too-large');
  });

  it('without a response store, a retry is a 409 with the first receipt: one decision, one charge', async () => {
    const { app: api, tenant, key } = app([slowBucket(1_000)]);
    const first = await api.post({ query: COST_7 }, { key, headers: { 'Idempotency-Key': 'order-42' } });
    const second = await api.post({ query: COST_7 }, { key, headers: { 'Idempotency-Key': 'order-42' } });
    const [a, b] = [await bodyOf(first), await bodyOf(second)];
    expect(first.status).toBe(200);
    expect(second.status).toBe(409);
    expect(codeOf(b)).toBe('IDEMPOTENCY_KEY_REPLAYED');
    expect(b.extensions?.cost).toMatchObject({ receipt: a.extensions?.cost?.receipt, isReplay: true });
    expect(await bucketTokens(tenant)).toBe(993);
    expect((await tenantEvents(tenant)).filter((event) => event['type'] === 'usage.reserved.v1')).toHaveLength(1);
  });
});

describe('identity', () => {
  it('answers missing, malformed, unknown and revoked keys with 401 and a clear code, without touching Redis', async () => {
    const { app: api, tenant, key } = app([slowBucket(1_000)]);
    api.keyStore.add({ tenant, keyId: 'old', planId: 'p' });
    const revoked = api.keyFor(tenant, 'p', 'gone');
    api.keyStore.revoke(tenant, 'gone');
    const before = decider.decides.length;
    const cases: [Record<string, string>, string][] = [
      [{}, 'API_KEY_REQUIRED'],
      [{ authorization: 'Bearer nope' }, 'API_KEY_INVALID'],
      [{ authorization: `Bearer ${key.slice(0, -2)}xx` }, 'API_KEY_INVALID'],
      [{ authorization: `Bearer ${revoked}` }, 'API_KEY_REVOKED'],
      [{ authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }, 'API_KEY_INVALID'],
    ];
    for (const [headers, code] of cases) {
      const response = await api.post({ query: COST_7 }, { headers });
      expect(response.status).toBe(401);
      expect(response.headers.get('WWW-Authenticate')).toBe('Bearer realm="tollgate"');
      expect(codeOf(await bodyOf(response))).toBe(code);
    }
    expect(decider.decides.length).toBe(before);
    expect(api.store.resolverCalls).toBe(0);
  });

  it("tenant A's key can never spend or read tenant B's quota or data", async () => {
    // given two tenants on the same plan
    const api = testApp({ decider, plans: [plan('p', [slowBucket(1_000), quota('month', 1_000)])] });
    const [tenantA, tenantB] = [uniqueTenant('a'), uniqueTenant('b')];
    const [keyA, keyB] = [api.keyFor(tenantA, 'p'), api.keyFor(tenantB, 'p')];
    await api.post({ query: 'mutation { placeOrder(items: [{ productId: "p-0001", quantity: 1 }]) { id } }' }, { key: keyB });
    const before = await bucketTokens(tenantB);
    const usageOfB = (await tenantEvents(tenantB)).length;
    expect(usageOfB).toBeGreaterThan(0);
    const [lastOfA, lastOfB] = [await lastEventId(tenantA), await lastEventId(tenantB)];
    // when A spends and reads
    const body = await bodyOf(
      await api.post({ query: `{ me { tenant } orders(first: 5) { nodes { id } } ${COST_7.slice(1, -1)} }` }, { key: keyA }),
    );
    // then A saw only A, and B's buckets did not move
    expect(body.data).toMatchObject({ me: { tenant: tenantA }, orders: { nodes: [] } });
    expect(await bucketTokens(tenantB)).toBe(before);
    expect(decider.decides.at(-1)?.tenant).toBe(tenantA);
    // and of every event appended since, on A's shard and on B's (other files write there too), A's request made
    // A's reserved and settled events and none is B's: B's usage is what it was
    const appended = [
      ...(await shardEvents(tenantA, lastOfA)),
      ...(shardOf(parseTenantId(tenantA), SHARDS) === shardOf(parseTenantId(tenantB), SHARDS) ? [] : await shardEvents(tenantB, lastOfB)),
    ];
    expect(
      appended
        .filter((event) => event['tenant'] === tenantA)
        .map((event) => event['type'])
        .sort(),
    ).toEqual(['usage.reserved.v1', 'usage.settled.v1']);
    expect(appended.filter((event) => event['tenant'] === tenantB)).toEqual([]);
    expect((await tenantEvents(tenantB)).length).toBe(usageOfB);
  });
});

describe('soft, shadow and defer limits', () => {
  it('soft: serves past the limit, billed as overage, with warnings in extensions and a header', async () => {
    const { app: api } = app([]);
    const tenant = uniqueTenant('s');
    api.plans.set(plan('soft', [slowBucket(1_000), quota('month', 20, { mode: 'soft' }, [80])]));
    const key = api.keyFor(tenant, 'soft');
    const statuses: number[] = [];
    let lastWarnings: unknown;
    let header: string | null = null;
    for (let i = 0; i < 4; i += 1) {
      const response = await api.post({ query: COST_7 }, { key });
      statuses.push(response.status);
      const body = await bodyOf(response);
      if (body.extensions?.quota !== undefined) {
        lastWarnings = body.extensions.quota.warnings;
        header = response.headers.get('Tollgate-Quota-Warning');
      }
    }
    // 7, 14, 21 (crosses 80 % and exceeds 20 by 1), 28 (7 over): all served
    expect(statuses).toEqual([200, 200, 200, 200]);
    expect(lastWarnings).toEqual([{ kind: 'soft-limit-exceeded', limitId: 'month', overage: 7 }]);
    expect(header).toBe('"month";overage=7');
  });

  it('shadow: reports what it would deny and never denies', async () => {
    const { app: api } = app([]);
    const tenant = uniqueTenant('sh');
    api.plans.set(plan('shadow', [slowBucket(1_000), quota('probe', 10, { mode: 'shadow' })]));
    const key = api.keyFor(tenant, 'shadow');
    const bodies = [];
    for (let i = 0; i < 3; i += 1) {
      const response = await api.post({ query: COST_7 }, { key });
      expect(response.status).toBe(200);
      expect(response.headers.get('RateLimit-Policy')).toBe('"burst";q=1000;w=3600000');
      bodies.push(await bodyOf(response));
    }
    expect(bodies.map((body) => body.extensions?.cost?.limits.find((limit) => limit.id === 'probe')?.isExceeded)).toEqual([
      false,
      true,
      true,
    ]);
  });

  it('defer: a @deferrable mutation past a defer limit is answered 202 with a job; other operations get 429', async () => {
    const { app: api } = app([]);
    const tenant = uniqueTenant('d');
    api.plans.set(plan('heavy', [slowBucket(10_000), quota('heavy', 600, { mode: 'defer' })]));
    const key = api.keyFor(tenant, 'heavy');
    const first = await api.post({ query: 'mutation { exportOrdersReport { id } }' }, { key });
    expect(first.status).toBe(200);
    const deferred = await api.post(
      { query: 'mutation Export { exportOrdersReport { id } }' },
      { key, headers: { 'Idempotency-Key': 'export-1' } },
    );
    expect(deferred.status).toBe(202);
    const body = await bodyOf(deferred);
    expect(body.data).toBeNull();
    expect(body.extensions?.job).toMatchObject({ status: 'queued' });
    expect(deferred.headers.get('Location')).toBe(`/jobs/${body.extensions?.job?.id ?? ''}`);
    expect(api.deferrer.jobs.get(body.extensions?.job?.id ?? '')?.input).toMatchObject({ tenant, operationName: 'Export', cost: 500 });
    const resolverCallsBefore = api.store.resolverCalls;
    const query = await api.post({ query: '{ products(first: 100) { nodes { id } } }' }, { key });
    expect(query.status).toBe(429);
    expect(codeOf(await bodyOf(query))).toBe('QUOTA_EXHAUSTED');
    expect(api.store.resolverCalls).toBe(resolverCallsBefore);
  });
});

describe('defer without a working deferrer', () => {
  it('answers 503 JOBS_UNAVAILABLE with a Retry-After when the job cannot be recorded or started, and runs nothing', async () => {
    const failing = { defer: () => Promise.reject(new DependencyError('TEMPORAL_UNAVAILABLE', 'deferrer down')) };
    const api = testApp({
      decider,
      plans: [plan('heavy', [slowBucket(10_000), quota('heavy', 100, { mode: 'defer' })])],
      deferrer: failing,
    });
    const key = api.keyFor(uniqueTenant('df'), 'heavy');
    const response = await api.post({ query: 'mutation { exportOrdersReport { id } }' }, { key });
    expect(response.status).toBe(503);
    expect(response.headers.get('Retry-After')).toMatch(/^\d+$/);
    expect(codeOf(await bodyOf(response))).toBe('JOBS_UNAVAILABLE');
    expect(api.store.resolverCalls).toBe(0);
  });

  it('answers 503 JOBS_UNAVAILABLE, without deciding, when an Idempotency-Key retry cannot learn whether its job exists', async () => {
    const counting = new CountingDecider(decider);
    const unknown = {
      defer: () => Promise.reject(new Error('not reached')),
      find: () => Promise.reject(new DependencyError('TEMPORAL_UNAVAILABLE', 'cannot tell')),
    };
    const api = testApp({
      decider: counting,
      plans: [plan('heavy', [slowBucket(10_000), quota('heavy', 100, { mode: 'defer' })])],
      deferrer: unknown,
    });
    const key = api.keyFor(uniqueTenant('df'), 'heavy');
    const response = await api.post(
      { query: 'mutation { exportOrdersReport { id } }' },
      { key, headers: { 'Idempotency-Key': 'retry-1' } },
    );
    expect(response.status).toBe(503);
    expect(codeOf(await bodyOf(response))).toBe('JOBS_UNAVAILABLE');
    expect(counting.decides).toHaveLength(0);
    expect(api.store.resolverCalls).toBe(0);
  });
});

describe('quote', () => {
  it('prices an operation with a per-field breakdown and takes no tokens for it', async () => {
    const { app: api, tenant, key } = app([slowBucket(1_000)]);
    const body = await bodyOf(
      await api.post(
        {
          query: 'query Q($q: String!, $v: JSONObject) { quote(query: $q, variables: $v) { cost lines { path size cost } } }',
          variables: { q: 'query P($n: Int) { products(first: $n) { nodes { name } } }', v: { n: 500 } },
        },
        { key },
      ),
    );
    expect(body.data).toMatchObject({
      quote: {
        cost: 501,
        lines: [
          { path: 'products', size: 500, cost: 501 },
          { path: 'products.nodes', size: 1, cost: 1 },
          { path: 'products.nodes.name', size: 1, cost: 0 },
        ],
      },
    });
    // only the quote field itself (1 unit) was charged
    expect(body.extensions?.cost?.requested).toBe(1);
    expect(await bucketTokens(tenant)).toBe(999);
  });
});

describe('the limiter cannot be worn down cheaply', () => {
  it('unknown keys reach neither the decider nor Redis', async () => {
    const { app: api } = app([slowBucket(1_000)]);
    const before = decider.decides.length;
    const responses = await Promise.all(
      Array.from({ length: 30 }, () => api.post({ query: COST_7 }, { key: `tg_${randomBytes(32).toString('base64url')}` })),
    );
    expect(responses.every((response) => response.status === 401)).toBe(true);
    expect(decider.decides.length).toBe(before);
  });

  it('a 429 runs no resolver and appends no event', async () => {
    const { app: api, tenant, key } = app([slowBucket(14)]);
    expect((await api.post({ query: COST_7 }, { key })).status).toBe(200);
    expect((await api.post({ query: COST_7 }, { key })).status).toBe(200);
    const calls = api.store.resolverCalls;
    const events = (await tenantEvents(tenant)).length;
    const refused = await Promise.all(Array.from({ length: 10 }, () => api.post({ query: COST_7 }, { key })));
    expect(refused.map((response) => response.status)).toEqual(Array.from({ length: 10 }, () => 429));
    expect(api.store.resolverCalls).toBe(calls);
    expect((await tenantEvents(tenant)).length).toBe(events);
  });

  it('every limiter key has a TTL, and Redis work per decision is bounded by the number of limits', async () => {
    const limits = [slowBucket(10_000), quota('month', 100_000), quota('day', 100_000)];
    const { app: api, tenant, key } = app(limits);
    const before = { decides: decider.decides.length, settles: decider.settles.length };
    for (let i = 0; i < 5; i += 1) await api.post({ query: '{ products(first: 50, category: "c-rare") { nodes { id } } }' }, { key });
    // one decide and (a refund here) one settle per operation
    expect(decider.decides.length - before.decides).toBe(5);
    expect(decider.settles.length - before.settles).toBe(5);
    // each decision's script call carries 3 fixed keys + at most 2 per limit
    for (const input of decider.decides.slice(before.decides)) {
      expect(compileRequest(input, { shardCount: SHARDS, localNowMs: Date.now() }).keys.length).toBeLessThanOrEqual(3 + 2 * limits.length);
    }
    const keys = await tenantKeys(tenant);
    // 3 limit keys, 1 admitted counter, 5 request records
    expect(keys).toHaveLength(3 + 1 + 5);
    for (const redisKey of keys) {
      expect(redisKey).toMatch(KEY_PATTERN);
      expect(await redis.pttl(redisKey)).toBeGreaterThan(0);
    }
  });

  it('hostile identifiers are refused with 400 INVALID_ID before any Redis call, and every key stays in the key pattern', async () => {
    const { app: api, tenant, key } = app([slowBucket(1_000_000)]);
    const hostile = fc.oneof(
      fc.string({
        unit: fc.constantFrom('{', '}', ':', ' ', '*', '?', '[', ']', 'A', 'é', '"', "'", '\\', 'a', '0'),
        minLength: 1,
        maxLength: 80,
      }),
      fc.constant('x'.repeat(64 * 1024)),
      fc.constant("redis.call('FLUSHALL') --"),
      fc.constant('{s:1}:t:victim:b:v1:burst'),
      fc.constant('a'.repeat(65)),
    );
    await fc.assert(
      fc.asyncProperty(hostile, async (idempotencyKey) => {
        fc.pre(!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(idempotencyKey));
        const before = decider.decides.length;
        const response = await api.post({ query: COST_7 }, { key, headers: { 'Idempotency-Key': idempotencyKey } });
        expect(response.status).toBe(400);
        expect(codeOf(await bodyOf(response))).toBe('INVALID_ID');
        expect(decider.decides.length).toBe(before);
      }),
      { numRuns: 60 },
    );
    // operation names: GraphQL names, but longer than an id may be
    const before = decider.decides.length;
    const longName = await api.post({ query: `query ${'Q'.repeat(300)} { me { tenant } }` }, { key });
    expect(longName.status).toBe(400);
    expect(codeOf(await bodyOf(longName))).toBe('INVALID_ID');
    // a hostile name the document does not hold selects no operation: refused before pricing, with yoga's code
    const unknownOperation = await api.post({ query: 'query A { me { tenant } }', operationName: 'A}:{\r\nEVAL' }, { key });
    expect(unknownOperation.status).toBe(400);
    expect(codeOf(await bodyOf(unknownOperation))).toBe('OPERATION_RESOLUTION_FAILURE');
    expect(decider.decides.length).toBe(before);
    // hostile tenant and key ids cannot even be stored
    expect(() => api.keyStore.add({ tenant: 'victim}:{s:1}', keyId: 'k', planId: 'p' })).toThrow(
      expect.objectContaining({ code: 'INVALID_ID' }),
    );
    expect(() => api.keyStore.add({ tenant, keyId: 'k\r\n:1', planId: 'p' })).toThrow(expect.objectContaining({ code: 'INVALID_ID' }));
    // a valid request afterwards writes only well-formed keys
    expect((await api.post({ query: COST_7 }, { key, headers: { 'Idempotency-Key': 'fine.key-1' } })).status).toBe(200);
    const keys = await tenantKeys(tenant);
    expect(keys.length).toBeGreaterThan(0);
    for (const redisKey of keys) expect(redisKey).toMatch(KEY_PATTERN);
  });
});

describe('probes', () => {
  it('/metrics reports decisions by kind and limit and is never limited', async () => {
    const { app: api, key } = app([slowBucket(7)]);
    await api.post({ query: COST_7 }, { key });
    await api.post({ query: COST_7 }, { key });
    const metrics = await api.yoga.fetch('http://tollgate.test/metrics');
    expect(metrics.status).toBe(200);
    const text = await metrics.text();
    expect(text).toContain('tollgate_decisions_total{kind="allowed",limit="none"} 1');
    expect(text).toContain('tollgate_decisions_total{kind="denied",limit="burst"} 1');
    expect(text).toContain('tollgate_decider_latency_seconds_count 2');
    expect(text).toContain('tollgate_decider_breaker_state 0');
  });
});
