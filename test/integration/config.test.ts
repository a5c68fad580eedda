/**
 * Plans and API keys in DynamoDB, followed live by every API instance
 * (DESIGN §4): announced on Redis, polled as a fallback, last known good on
 * failure. Real DynamoDB Local and Redis; a DynamoDB outage is injected with
 * AWS SDK middleware in front of the real client.
 */
import { PutItemCommand, ScanCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisDecider, connectDeciderRedis, type DeciderRedis } from '../../src/decider/index.js';
import {
  DynamoConfigStore,
  LiveConfig,
  announceConfigVersion,
  configTableName,
  hashApiKey,
  parsePlan,
  type Plan,
} from '../../src/graphql/index.js';
import { seedDemoConfig } from '../../src/graphql/demo/index.js';
import { createDynamoClient } from '../../src/metering/index.js';
import { ConflictError, NotFoundError, ValidationError, createLogger, parsePlanId, systemClock } from '../../src/shared/index.js';
import { closeAll } from '../support/teardown.js';
import { bodyOf, codeOf, plan, slowBucket, testApp } from '../support/graphql.js';
import { testStack, uniqueTenant } from '../support/stack.js';

const logger = createLogger({ level: 'silent', name: 'config-test' });
let redis: DeciderRedis;
let dynamo: DynamoDBClient;
let store: DynamoConfigStore;
const opened: LiveConfig[] = [];

beforeAll(async () => {
  const stack = testStack();
  redis = await connectDeciderRedis({ url: stack.redisUrl, commandTimeoutMs: 5_000 });
  dynamo = createDynamoClient({ endpoint: stack.dynamodbEndpoint, region: stack.dynamodbRegion });
  store = new DynamoConfigStore(dynamo, { tablePrefix: stack.tablePrefix });
});

afterAll(async () => {
  for (const live of opened) live.close();
  await closeAll(redis, dynamo);
});

async function live(options: { redis?: DeciderRedis; pollMs?: number; store?: DynamoConfigStore } = {}): Promise<LiveConfig> {
  const config = new LiveConfig({
    store: options.store ?? store,
    logger,
    pollMs: options.pollMs ?? 60_000,
    ...(options.redis === undefined ? {} : { redis: options.redis }),
  });
  opened.push(config);
  await config.start();
  return config;
}

/** Resolves when `config` has loaded a version ≥ `version` (rejects after 10 s: a missed change, not a speed check). */
function loaded(config: LiveConfig, version: number): Promise<void> {
  if (config.version() >= version) return Promise.resolve();
  return new Promise((resolveLoaded, reject) => {
    const timer = setTimeout(() => reject(new Error(`config version ${version} never loaded (at ${config.version()})`)), 10_000);
    const off = config.onChange((current) => {
      if (current < version) return;
      clearTimeout(timer);
      off();
      resolveLoaded();
    });
  });
}

const uniquePlanId = (): string => uniqueTenant('plan');
const burstPlan = (id: string, version: number, capacity: number): Plan => ({ ...plan(id, [slowBucket(capacity)]), version });

describe('plans', () => {
  it('reach a running instance by announcement, versioned: an older or equal version is refused', async () => {
    // given an instance following announcements (its poll is far too slow to matter)
    const follower = await live({ redis });
    const id = uniquePlanId();
    // when a plan is stored and announced
    const version = await store.putPlan(burstPlan(id, 1, 100), Date.now());
    await announceConfigVersion(redis, version);
    await loaded(follower, version);
    // then the instance serves it
    expect(follower.get(parsePlanId(id))?.limits[0]?.algorithm).toMatchObject({ capacity: 100 });
    // and a new version replaces it, while a stale one is refused with nothing changed
    const second = await store.putPlan(burstPlan(id, 2, 50), Date.now());
    await announceConfigVersion(redis, second);
    await loaded(follower, second);
    expect(follower.get(parsePlanId(id))).toMatchObject({ version: 2 });
    await expect(store.putPlan(burstPlan(id, 2, 999), Date.now())).rejects.toBeInstanceOf(ConflictError);
    await expect(store.putPlan(burstPlan(id, 1, 999), Date.now())).rejects.toBeInstanceOf(ConflictError);
    expect((await store.listPlans()).find((entry) => entry.isValid && entry.plan.id === id)).toMatchObject({ plan: { version: 2 } });
  });

  it('take the version from DynamoDB, never from the announcement: a forged one cannot pin an instance', async () => {
    // given a follower, and a stray message claiming a version far ahead
    const follower = await live({ redis });
    const before = follower.version();
    await redis.publish('tollgate:config:v1', '999999');
    // when a real change is announced afterwards
    const id = uniquePlanId();
    const version = await store.putPlan(burstPlan(id, 1, 3), Date.now());
    await announceConfigVersion(redis, version);
    await loaded(follower, version);
    // then the follower is at the real version and serves the change
    expect(follower.version()).toBe(version);
    expect(version).toBeGreaterThan(before);
    expect(follower.get(parsePlanId(id))).toBeDefined();
  });

  it('reach an instance that missed the announcement by its poll', async () => {
    const poller = await live({ pollMs: 50 });
    const id = uniquePlanId();
    const version = await store.putPlan(burstPlan(id, 1, 7), Date.now());
    await loaded(poller, version);
    expect(poller.get(parsePlanId(id))).toBeDefined();
  });

  it('refuses an invalid plan before storing it', async () => {
    const id = uniquePlanId();
    const bad = { ...burstPlan(id, 1, 10), maxCostPerOperation: 0 };
    await expect(store.putPlan(bad, Date.now())).rejects.toBeInstanceOf(ValidationError);
    expect(() =>
      parsePlan({ ...burstPlan(id, 1, 10), limits: [{ ...slowBucket(10), algorithm: { kind: 'token-bucket', capacity: -1 } }] }),
    ).toThrow(ValidationError);
    expect(() => parsePlan({ ...burstPlan(id, 1, 10), surprise: true })).toThrow(ValidationError);
    expect((await store.listPlans()).some((entry) => (entry.isValid ? entry.plan.id : entry.planId) === id)).toBe(false);
  });

  it('keeps serving the last good version of a plan whose stored data stops validating', async () => {
    // given a follower serving version 1 of a plan
    const follower = await live({ redis });
    const id = uniquePlanId();
    const version = await store.putPlan(burstPlan(id, 1, 100), Date.now());
    await announceConfigVersion(redis, version);
    await loaded(follower, version);
    // when the stored item is damaged behind the store's back (a bad manual edit) and a change is announced
    await dynamo.send(
      new PutItemCommand({
        TableName: configTableName(testStack().tablePrefix),
        Item: {
          pk: { S: 'plans' },
          sk: { S: `plan#${id}` },
          version: { N: '2' },
          body: { S: JSON.stringify({ ...burstPlan(id, 2, 100), maxCostPerOperation: -5 }) },
        },
      }),
    );
    const other = uniquePlanId();
    const next = await store.putPlan(burstPlan(other, 1, 5), Date.now());
    await announceConfigVersion(redis, next);
    await loaded(follower, next);
    // then the damaged plan is still served at version 1, reported, and the other change is live
    expect(follower.get(parsePlanId(id))).toMatchObject({ version: 1 });
    expect(follower.planProblems().find((problem) => problem.planId === id)).toMatchObject({ version: 2, servedVersion: 1 });
    expect(follower.get(parsePlanId(other))).toBeDefined();
  });
});

describe('API keys', () => {
  it('are stored only as hashes, found by hash, unique per tenant and key id, and revocable', async () => {
    const tenant = uniqueTenant('c');
    const { key } = await store.addKey({ tenant, keyId: 'k1', planId: 'p', nowMs: Date.now() });
    // the plain key is nowhere in the table
    const items = await dynamo.send(new ScanCommand({ TableName: configTableName(testStack().tablePrefix) }));
    expect(JSON.stringify(items.Items)).not.toContain(key);
    expect(JSON.stringify(items.Items)).not.toContain(key.slice(3));
    expect(await store.findKeyByHash(hashApiKey(key))).toMatchObject({ tenant, keyId: 'k1', planId: 'p', isRevoked: false });
    await expect(store.addKey({ tenant, keyId: 'k1', planId: 'p', nowMs: Date.now() })).rejects.toBeInstanceOf(ConflictError);
    await store.revokeKey({ tenant, keyId: 'k1' });
    expect(await store.findKeyByHash(hashApiKey(key))).toMatchObject({ isRevoked: true });
    // another tenant cannot revoke it by naming the same key id; unknown keys are a clear NotFound
    await expect(store.revokeKey({ tenant: uniqueTenant('c'), keyId: 'k1' })).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.addKey({ tenant: 'Bad Tenant', keyId: 'k1', planId: 'p', nowMs: Date.now() })).rejects.toBeInstanceOf(
      ValidationError,
    );
  });

  it('the demo seed keeps still-valid keys across restarts and replaces revoked or unknown ones', async () => {
    // given a first start (no keys file yet)
    const first = await seedDemoConfig(store, [], Date.now());
    expect(first.map((key) => key.tenant).sort()).toEqual(['acme', 'globex']);
    // when the API starts again with the keys it showed, then it shows the same keys
    const again = await seedDemoConfig(store, first, Date.now() + 1);
    expect(again).toEqual(first);
    // when one was revoked (or the file holds junk), then that tenant gets a new working key
    const acme = first.find((key) => key.tenant === 'acme');
    await store.revokeKey({ tenant: 'acme', keyId: acme?.keyId ?? '' });
    const third = await seedDemoConfig(store, [...first, { tenant: 'globex', keyId: 'x', planId: 'pro', key: 'tg_junk' }], Date.now() + 2);
    const newAcme = third.find((key) => key.tenant === 'acme');
    expect(newAcme?.key).not.toBe(acme?.key);
    expect(await store.findKeyByHash(hashApiKey(newAcme?.key ?? ''))).toMatchObject({ tenant: 'acme', isRevoked: false });
    expect(third.find((key) => key.tenant === 'globex')).toEqual(first.find((key) => key.tenant === 'globex'));
    // and the demo plans are stored
    expect(
      (await store.listPlans()).filter((entry) => entry.isValid && ['starter', 'pro', 'anonymous'].includes(entry.plan.id)),
    ).toHaveLength(3);
  });

  it('end to end: a new plan version and a revocation take effect on a running API without a restart', async () => {
    // given an API serving a LiveConfig that follows announcements
    const follower = await live({ redis });
    const decider = new RedisDecider(redis, { shardCount: 16, clock: systemClock });
    const api = testApp({ decider, plans: [], config: follower });
    const tenant = uniqueTenant('c');
    const planId = uniquePlanId();
    const planVersion = await store.putPlan(burstPlan(planId, 1, 1_000), Date.now());
    const { key, version } = await store.addKey({ tenant, keyId: 'k1', planId, nowMs: Date.now() });
    await announceConfigVersion(redis, Math.max(planVersion, version));
    await loaded(follower, version);
    const first = await api.post({ query: '{ products(first: 2) { nodes { id } } }' }, { key });
    expect(first.status).toBe(200);
    expect(first.headers.get('ratelimit-policy')).toContain('q=1000');
    // when the plan gets a smaller bucket (version 2), then the next request is decided under it
    const resized = await store.putPlan(burstPlan(planId, 2, 500), Date.now());
    await announceConfigVersion(redis, resized);
    await loaded(follower, resized);
    const second = await api.post({ query: '{ products(first: 2) { nodes { id } } }' }, { key });
    expect(second.headers.get('ratelimit-policy')).toContain('q=500');
    // when the key is revoked, then it is refused at once (the identity cache is dropped on the version change)
    const revoked = await store.revokeKey({ tenant, keyId: 'k1' });
    await announceConfigVersion(redis, revoked);
    await loaded(follower, revoked);
    const third = await api.post({ query: '{ products(first: 2) { nodes { id } } }' }, { key });
    expect(third.status).toBe(401);
    expect(codeOf(await bodyOf(third))).toBe('API_KEY_REVOKED');
  });

  it('while DynamoDB is down: plans and known keys keep working, unknown keys get a retryable 503', async () => {
    // given an instance whose DynamoDB client can be cut off (SDK middleware in front of DynamoDB Local)
    const stack = testStack();
    const client = createDynamoClient({ endpoint: stack.dynamodbEndpoint, region: stack.dynamodbRegion, maxAttempts: 1 });
    let isDown = false;
    client.middlewareStack.add(
      (next) => async (args) => {
        if (isDown) throw Object.assign(new Error('injected: DynamoDB unreachable'), { name: 'NetworkingError' });
        return next(args);
      },
      { step: 'initialize', name: 'injectOutage' },
    );
    const flaky = new DynamoConfigStore(client, { tablePrefix: stack.tablePrefix });
    const planId = uniquePlanId();
    await store.putPlan(burstPlan(planId, 1, 1_000), Date.now());
    const tenant = uniqueTenant('c');
    const { key } = await store.addKey({ tenant, keyId: 'k1', planId, nowMs: Date.now() });
    const { key: neverSeen } = await store.addKey({ tenant, keyId: 'k2', planId, nowMs: Date.now() });
    const follower = await live({ store: flaky });
    const decider = new RedisDecider(redis, { shardCount: 16, clock: systemClock });
    // a short identity cache, so the outage is met by the key store itself, not hidden by the cache
    const api = testApp({ decider, plans: [], config: follower, tollgate: { identityCacheTtlMs: 1 } });
    expect((await api.post({ query: '{ products(first: 1) { nodes { id } } }' }, { key })).status).toBe(200);
    // when DynamoDB goes away
    isDown = true;
    await follower.check();
    // then the plan is still served, the known key still works, and an unseen key is a clear 503
    expect(follower.get(parsePlanId(planId))).toBeDefined();
    await new Promise((resolveLater) => setTimeout(resolveLater, 5));
    expect((await api.post({ query: '{ products(first: 1) { nodes { id } } }' }, { key })).status).toBe(200);
    const unseen = await api.post({ query: '{ products(first: 1) { nodes { id } } }' }, { key: neverSeen });
    expect(unseen.status).toBe(503);
    expect(unseen.headers.get('retry-after')).toBe('1');
    expect(codeOf(await bodyOf(unseen))).toBe('KEY_STORE_UNAVAILABLE');
    // and when it is back, the unseen key works
    isDown = false;
    expect((await api.post({ query: '{ products(first: 1) { nodes { id } } }' }, { key: neverSeen })).status).toBe(200);
    client.destroy();
  });
});
