/**
 * The pumpUsageBatch activity alone (MockActivityEnvironment), and the pump on
 * the test Redis Cluster: the dead-letter MULTI spans the usage stream and the
 * dead-letter stream, which must share a slot.
 */
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { Redis } from 'ioredis';
import { beforeAll, describe, expect, it } from 'vitest';
import { connectDeciderRedis, createDeciderRedis, usageStreamKey, type DeciderRedis } from '../../src/decider/index.js';
import {
  DynamoLedgerStore,
  UsagePump,
  createDynamoClient,
  deadLetterStreamKey,
  parseShard,
  type LedgerStore,
} from '../../src/metering/index.js';
import { createMeteringActivities, type PumpUsageBatchInput, type PumpUsageBatchResult } from '../../src/workflows/activities/index.js';
import { closeAfterAll } from '../support/teardown.js';
import { allocateShards } from '../support/allocate.js';
import { testConfig, testStack, uniqueTenant } from '../support/stack.js';
import { sleep } from '../support/time.js';
import { appendEvents, generateEvents, reservedEvent, seededRandom } from '../support/usage-events.js';

const config = testConfig();
const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
const ledger = new DynamoLedgerStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix, maxTransactItems: 10 });
const BP = Date.UTC(2026, 10, 1);
// Its shards, on the single Redis and on the cluster, come from the test allocator.
const range = allocateShards(4);
let redis: Redis;
let pumpRedis: DeciderRedis;
let cluster: DeciderRedis;

beforeAll(async () => {
  redis = new Redis(config.redis.url);
  pumpRedis = await connectDeciderRedis({ url: config.redis.url, commandTimeoutMs: 5_000 });
  cluster = createDeciderRedis({ url: 'redis://unused', clusterNodes: testStack().redisClusterNodes, commandTimeoutMs: 5_000 });
  await cluster.connect();
});

closeAfterAll(() => [redis, pumpRedis, cluster, dynamo]);

describe('pumpUsageBatch activity', () => {
  it('heartbeats at its start, then at most once a second, also while its batch waits on a slow ledger; returns the batch counts', async () => {
    // given 30 events (some settled) on a fresh shard, and a ledger (the real one) that holds the batch 2.5 s
    const shard = parseShard(range.at(0));
    const events = generateEvents({ tenants: [uniqueTenant()], periods: [BP], requests: 20, random: seededRandom(2), prefix: 'h' });
    await appendEvents(redis, usageStreamKey(shard), events);
    const slowLedger: LedgerStore = {
      postEntry: (entry) => ledger.postEntry(entry),
      getBalance: (input) => ledger.getBalance(input),
      postEntries: async (entries, options) => {
        await sleep(2_500);
        return ledger.postEntries(entries, options);
      },
    };
    const activities = createMeteringActivities({ pump: new UsagePump(pumpRedis, slowLedger) });
    const env = new MockActivityEnvironment();
    const heartbeats: { details: unknown; atMs: number }[] = [];
    env.on('heartbeat', (details: unknown) => heartbeats.push({ details, atMs: Date.now() }));
    // when
    const result = await env.run((input: PumpUsageBatchInput) => activities.pumpUsageBatch(input), { shard, claimCursor: '0-0' });
    // then the counts are the batch's
    expect(result).toMatchObject({ read: events.length, posted: events.length, duplicates: 0, deadLettered: 0, acked: events.length });
    // and it heartbeated at its start, at least twice more during the 2.5 s wait, never twice within a second
    expect(heartbeats[0]?.details).toBe('start');
    expect(heartbeats.length).toBeGreaterThanOrEqual(3);
    const gaps = heartbeats.slice(1).map((beat, index) => beat.atMs - (heartbeats[index]?.atMs ?? 0));
    expect(gaps.filter((gap) => gap < 1_000)).toEqual([]);
  });

  it('with a span, keeps pumping entries that arrive during it (no Temporal round trip per batch) and returns after the span', async () => {
    // given a fresh shard with 4 events, and 6 more appended 400 ms into the activity's 1.5 s span
    const shard = parseShard(range.at(1));
    const tenant = uniqueTenant();
    const first = generateEvents({ tenants: [tenant], periods: [BP], requests: 4, random: seededRandom(5), prefix: 'sa' });
    const later = generateEvents({ tenants: [tenant], periods: [BP], requests: 6, random: seededRandom(6), prefix: 'sb' });
    await appendEvents(redis, usageStreamKey(shard), first);
    const batches: number[] = [];
    const activities = createMeteringActivities({
      pump: new UsagePump(pumpRedis, ledger),
      onBatch: (outcome) => {
        if ('result' in outcome) batches.push(outcome.result.read);
      },
    });
    const env = new MockActivityEnvironment({ startToCloseTimeoutMs: 10_000 });
    const appendLater = new Promise((resolve) => setTimeout(resolve, 400)).then(() => appendEvents(redis, usageStreamKey(shard), later));
    // when one activity runs with a 1.5 s span, idle polls at most 200 ms apart
    const startedMs = Date.now();
    const result: PumpUsageBatchResult = await env.run((input: PumpUsageBatchInput) => activities.pumpUsageBatch(input), {
      shard,
      claimCursor: '0-0',
      idleWaitMs: 1_500,
      idlePollMs: 200,
    });
    await appendLater;
    // then both waves were ledgered by this one activity, in separate batches, and it returned only after its span
    expect(result).toMatchObject({
      read: first.length + later.length,
      posted: first.length + later.length,
      acked: first.length + later.length,
    });
    expect(result.hasWaited).toBe(true);
    expect(batches.filter((read) => read > 0)).toEqual([first.length, later.length]);
    // (a span is drawn between half and all of idleWaitMs; the last pause may be cut short by up to idlePollMs)
    expect(Date.now() - startedMs).toBeGreaterThanOrEqual(1_500 / 2 - 200);
  });

  it('runs at most batchesInFlight batches of the process at once; a pump waiting its turn keeps heartbeating', async () => {
    // given two shards with events, and a ledger (the real one) that holds each batch 1.5 s before posting it
    const shards = [parseShard(range.at(2)), parseShard(range.at(3))];
    for (const [index, shard] of shards.entries()) {
      const events = generateEvents({
        tenants: [uniqueTenant()],
        periods: [BP],
        requests: 3,
        random: seededRandom(10 + index),
        prefix: `p${index}`,
      });
      await appendEvents(redis, usageStreamKey(shard), events);
    }
    const slowLedger: LedgerStore = {
      postEntry: (entry) => ledger.postEntry(entry),
      getBalance: (input) => ledger.getBalance(input),
      postEntries: async (entries, options) => {
        await sleep(1_500);
        return ledger.postEntries(entries, options);
      },
    };
    let running = 0;
    let mostRunning = 0;
    const activities = createMeteringActivities({
      pump: new UsagePump(pumpRedis, slowLedger),
      batchesInFlight: 1,
      onStage: (stage) => {
        if (stage === 'read') mostRunning = Math.max(mostRunning, (running += 1));
      },
      onBatch: () => (running -= 1),
    });
    // when both pumps run a batch at the same time, sharing one permit
    const heartbeats = shards.map(() => new Array<unknown>());
    const results: PumpUsageBatchResult[] = await Promise.all(
      shards.map((shard, index) => {
        const env = new MockActivityEnvironment();
        env.on('heartbeat', (details: unknown) => heartbeats[index]?.push(details));
        return env.run<[PumpUsageBatchInput], PumpUsageBatchResult, (input: PumpUsageBatchInput) => Promise<PumpUsageBatchResult>>(
          (input) => activities.pumpUsageBatch(input),
          {
            shard,
            claimCursor: '0-0',
          },
        );
      }),
    );
    // then both ledgered their events, one batch after the other (3 s in all), and both heartbeated beyond their start
    // (the one that waited its turn, 1.5 s, and then ran its own 1.5 s batch, at least three times)
    expect(results.map((result) => result.posted > 0)).toEqual([true, true]);
    expect(mostRunning).toBe(1);
    expect(Math.min(...heartbeats.map((beats) => beats.length))).toBeGreaterThanOrEqual(2);
    expect(Math.max(...heartbeats.map((beats) => beats.length))).toBeGreaterThanOrEqual(3);
  });

  it('fails a malformed shard as a non-retryable INVALID_INPUT', async () => {
    const activities = createMeteringActivities({ pump: new UsagePump(pumpRedis, ledger) });
    // (an error-level logger: the expected failure is not logged as a warning)
    const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
    const failure = await env
      .run((input: PumpUsageBatchInput) => activities.pumpUsageBatch(input), { shard: -1, claimCursor: '0-0' })
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ type: 'INVALID_INPUT', nonRetryable: true });
  });
});

describe('UsagePump on Redis Cluster', () => {
  it('ledgers good events and dead-letters a poison one atomically with its XACK on a cluster (one slot per shard)', async () => {
    // given
    const shard = parseShard(range.at(1));
    const stream = usageStreamKey(shard);
    const tenant = uniqueTenant();
    const good = [1, 2, 3].map((index) => reservedEvent({ requestId: `k${index}`, tenant, bp: BP, cost: index }));
    for (const event of [...good.slice(0, 2), { fields: ['type', 'usage.reserved.v1'] }, ...good.slice(2)]) {
      await cluster.xadd(stream, '*', ...event.fields);
    }
    const pump = new UsagePump(cluster, ledger);
    // when
    const result = await pump.pumpBatch({ shard, claimCursor: '0-0' });
    // then
    expect(result).toMatchObject({ read: 4, posted: 3, deadLettered: 1, acked: 4 });
    const dead = await cluster.xrange(deadLetterStreamKey(shard), '-', '+');
    expect(dead.map(([, fields]) => fields[fields.indexOf('reason') + 1])).toEqual(['missing field id']);
    expect(((await cluster.xpending(stream, 'meter')) as [number])[0]).toBe(0);
  });
});
