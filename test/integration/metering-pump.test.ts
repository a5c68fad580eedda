/**
 * The pump's batch against real Redis and DynamoDB Local (no Temporal here:
 * the workflow around it is tested in metering-workflow and metering-crash).
 */
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { Redis } from 'ioredis';
import { beforeAll, describe, expect, it } from 'vitest';
import { connectDeciderRedis, usageStreamKey, type DeciderRedis } from '../../src/decider/index.js';
import { DependencyError } from '../../src/shared/index.js';
import {
  DynamoLedgerStore,
  UsagePump,
  createDynamoClient,
  deadLetterStreamKey,
  ledgerTableName,
  parseShard,
  type LedgerStore,
  type PumpBatchResult,
  type PumpStage,
} from '../../src/metering/index.js';
import { closeAfterAll } from '../support/teardown.js';
import { allocateShards } from '../support/allocate.js';
import { testConfig, uniqueTenant } from '../support/stack.js';
import { readLedgerPartition } from '../support/ledger.js';
import {
  appendEvents,
  expectedBalances,
  generateEvents,
  reservedEvent,
  seededRandom,
  settledEvent,
  type TestEvent,
} from '../support/usage-events.js';

const config = testConfig();
const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
const ledger = new DynamoLedgerStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
const table = ledgerTableName(config.dynamodb.tablePrefix);
const BP_OCT = Date.UTC(2026, 9, 1);
const BP_NOV = Date.UTC(2026, 10, 1);
let redis: Redis;
let pumpRedis: DeciderRedis;
// Shards of this file's own (the test allocator's): no other test appends there; one fresh shard per test.
const range = allocateShards(16);
let nextShard = 0;
const freshShard = () => parseShard(range.at(nextShard++));

beforeAll(async () => {
  redis = new Redis(config.redis.url);
  pumpRedis = await connectDeciderRedis({ url: config.redis.url, clusterNodes: undefined, commandTimeoutMs: 5_000 });
});

closeAfterAll(() => [redis, pumpRedis, dynamo]);

class CrashAt extends Error {}

/** Pumps until a batch reads nothing; returns the batches' results. */
async function drain(pump: UsagePump, shard: ReturnType<typeof parseShard>): Promise<PumpBatchResult[]> {
  const results: PumpBatchResult[] = [];
  let claimCursor = '0-0';
  for (;;) {
    const result = await pump.pumpBatch({ shard, claimCursor });
    results.push(result);
    claimCursor = result.claimCursor;
    if (result.read === 0) return results;
  }
}

const sum = (results: PumpBatchResult[], field: 'posted' | 'duplicates' | 'deadLettered' | 'read' | 'acked' | 'reclaimed') =>
  results.reduce((total, result) => total + result[field], 0);

async function expectLedgerMatches(events: readonly TestEvent[]): Promise<void> {
  for (const [key, expected] of expectedBalances(events)) {
    const [tenant = '', periodStart = ''] = key.split('|');
    const partition = await readLedgerPartition(dynamo, { table, tenant, periodStart });
    const ids = events.filter((event) => `${event.tenant}|${new Date(event.bp).toISOString()}` === key).map((event) => event.eventId);
    expect(partition.balance, key).toEqual(expected);
    expect(partition.entrySum, key).toBe(expected.amount);
    expect(partition.entryIds, key).toEqual([...new Set(ids)].sort());
  }
}

async function pendingCount(stream: string): Promise<number> {
  const summary = (await redis.xpending(stream, 'meter')) as [number, ...unknown[]];
  return summary[0];
}

describe('UsagePump.pumpBatch', () => {
  it('ledgers every event of several tenants and periods exactly once, in batches, then acknowledges and trims', async () => {
    // given 1500 requests' events on one shard
    const shard = freshShard();
    const stream = usageStreamKey(shard);
    const tenants = [uniqueTenant(), uniqueTenant(), uniqueTenant()];
    const events = generateEvents({ tenants, periods: [BP_OCT, BP_NOV], requests: 1_500, random: seededRandom(7), prefix: 'a' });
    await appendEvents(redis, stream, events);
    const pump = new UsagePump(pumpRedis, ledger, { batchSize: 400, claimMinIdleMs: 60_000 });
    // when
    const results = await drain(pump, shard);
    // then
    expect(sum(results, 'read')).toBe(events.length);
    expect(sum(results, 'posted')).toBe(events.length);
    expect(sum(results, 'duplicates')).toBe(0);
    expect(sum(results, 'acked')).toBe(events.length);
    await expectLedgerMatches(events);
    expect(await pendingCount(stream)).toBe(0);
    // everything below the last delivered entry was acknowledged and trimmed; that one entry stays
    expect(await redis.xlen(stream)).toBe(1);
  });

  it('changes no balance when the same events are delivered again (duplicated on the stream)', async () => {
    // given events already ledgered
    const shard = freshShard();
    const stream = usageStreamKey(shard);
    const tenants = [uniqueTenant(), uniqueTenant()];
    const events = generateEvents({ tenants, periods: [BP_NOV], requests: 300, random: seededRandom(11), prefix: 'b' });
    await appendEvents(redis, stream, events);
    const pump = new UsagePump(pumpRedis, ledger, { batchSize: 250 });
    await drain(pump, shard);
    // when the same batch is appended and delivered again (twice within one batch for some)
    await appendEvents(redis, stream, [...events, ...events.slice(0, 20)]);
    const again = await drain(pump, shard);
    // then nothing moved: every redelivered event is a duplicate
    expect(sum(again, 'posted')).toBe(0);
    expect(sum(again, 'duplicates')).toBe(events.length + 20);
    expect(sum(again, 'deadLettered')).toBe(0);
    await expectLedgerMatches(events);
    expect(await pendingCount(stream)).toBe(0);
  });

  it('re-posts a batch written to DynamoDB but never acknowledged (a crash before XACK) without moving any balance', async () => {
    // given a batch whose ledger write happened but whose attempt died before XACK
    const shard = freshShard();
    const stream = usageStreamKey(shard);
    const tenants = [uniqueTenant(), uniqueTenant()];
    const events = generateEvents({ tenants, periods: [BP_OCT, BP_NOV], requests: 200, random: seededRandom(5), prefix: 'c' });
    await appendEvents(redis, stream, events);
    const crashing = new UsagePump(pumpRedis, ledger, { batchSize: 1_000, claimMinIdleMs: 60_000 });
    const crashAt = (stage: PumpStage) => {
      if (stage === 'ledger-written') throw new CrashAt(stage);
    };
    await expect(crashing.pumpBatch({ shard, claimCursor: '0-0', onStage: crashAt })).rejects.toBeInstanceOf(CrashAt);
    expect(await pendingCount(stream)).toBe(events.length);
    await expectLedgerMatches(events);
    // when a later attempt reclaims the pending entries (min idle 1 ms)
    await new Promise((resolve) => setTimeout(resolve, 5));
    const retry = new UsagePump(pumpRedis, ledger, { batchSize: 1_000, claimMinIdleMs: 1 });
    const results = await drain(retry, shard);
    // then they are re-posted as duplicates and acknowledged; the balances are unchanged
    expect(sum(results, 'reclaimed')).toBe(events.length);
    expect(sum(results, 'posted')).toBe(0);
    expect(sum(results, 'duplicates')).toBe(events.length);
    await expectLedgerMatches(events);
    expect(await pendingCount(stream)).toBe(0);
  });

  it('trims only below the oldest pending entry: unacknowledged entries stay on the stream', async () => {
    // given a delivered, unacknowledged batch, followed by more events
    const shard = freshShard();
    const stream = usageStreamKey(shard);
    const tenant = uniqueTenant();
    const first = Array.from({ length: 10 }, (_, index) => reservedEvent({ requestId: `p${index}`, tenant, bp: BP_NOV, cost: 1 }));
    const later = Array.from({ length: 10 }, (_, index) => reservedEvent({ requestId: `q${index}`, tenant, bp: BP_NOV, cost: 2 }));
    await appendEvents(redis, stream, first);
    const pump = new UsagePump(pumpRedis, ledger, { batchSize: 10, claimMinIdleMs: 3_600_000 });
    await expect(
      pump.pumpBatch({
        shard,
        claimCursor: '0-0',
        onStage: (stage) => {
          if (stage === 'ledger-written') throw new CrashAt(stage);
        },
      }),
    ).rejects.toBeInstanceOf(CrashAt);
    await appendEvents(redis, stream, later);
    // when the next batch handles the later events and trims
    const result = await pump.pumpBatch({ shard, claimCursor: '0-0' });
    // then the pending entries (and everything after them) are still on the stream
    expect(result).toMatchObject({ read: 10, reclaimed: 0, posted: 10, trimmed: 0 });
    expect(await pendingCount(stream)).toBe(10);
    expect(await redis.xlen(stream)).toBe(20);
  });

  it('dead-letters exactly the 5 poison events among 2000 with their reasons, and ledgers every good one', async () => {
    // given 5 malformed entries scattered among good ones
    const shard = freshShard();
    const stream = usageStreamKey(shard);
    const tenants = [uniqueTenant(), uniqueTenant(), uniqueTenant()];
    const good = generateEvents({ tenants, periods: [BP_OCT, BP_NOV], requests: 1_100, random: seededRandom(3), prefix: 'd' }).slice(
      0,
      2_000,
    );
    const poison = [
      { fields: ['id', 'x1', 'type', 'usage.exploded.v1', 'tenant', tenants[0] ?? '', 'cost', '1'] },
      {
        fields: reservedEvent({ requestId: 'x2', tenant: tenants[0] ?? '', bp: BP_NOV, cost: 1 }).fields.map((value) =>
          value === '1' ? '1.5' : value,
        ),
      },
      { fields: reservedEvent({ requestId: 'x3', tenant: 'Not A Tenant', bp: BP_NOV, cost: 1 }).fields },
      {
        fields: settledEvent({ requestId: 'x4', tenant: tenants[1] ?? '', bp: BP_NOV, requested: 5, actual: 1 }).fields.map((value) =>
          value === '4' ? '3' : value,
        ),
      },
      {
        fields: reservedEvent({ requestId: 'x5', tenant: tenants[2] ?? '', bp: BP_NOV, cost: 9 }).fields.map((value) =>
          value === '9' ? '9007199254740993' : value,
        ),
      },
    ];
    const mixed: { fields: string[] }[] = [...good];
    poison.forEach((item, index) => mixed.splice(300 + index * 350, 0, item));
    await appendEvents(redis, stream, mixed);
    const pump = new UsagePump(pumpRedis, ledger, { batchSize: 500 });
    // when
    const results = await drain(pump, shard);
    // then
    expect(sum(results, 'deadLettered')).toBe(5);
    expect(sum(results, 'posted')).toBe(good.length);
    const dead = await redis.xrange(deadLetterStreamKey(shard), '-', '+');
    const reasons = dead.map(([, fields]) => fields[fields.indexOf('reason') + 1]);
    expect(reasons).toEqual([
      'unknown type "usage.exploded.v1"',
      'cost is not an integer string in [0, 2^53): "1.5"',
      'tenant is not a valid id: "Not A Tenant"',
      'refund 3 is not requested 5 - actual 1',
      'cost is not an integer string in [0, 2^53): "9007199254740993"',
    ]);
    expect(dead.map(([, fields]) => JSON.parse(fields[fields.indexOf('fields') + 1] ?? '[]') as string[])).toEqual(
      poison.map((item) => item.fields),
    );
    await expectLedgerMatches(good);
    expect(await pendingCount(stream)).toBe(0);
  });

  it('dead-letters a poison entry once when two pumps hold it at once (a stalled batch and the retry that reclaimed it)', async () => {
    // given a poison entry and a good one, read by a batch that then stalls before its ledger write
    const shard = freshShard();
    const stream = usageStreamKey(shard);
    const tenant = uniqueTenant();
    const good = reservedEvent({ requestId: 'g1', tenant, bp: BP_NOV, cost: 3 });
    await appendEvents(redis, stream, [{ fields: ['id', 'p1', 'type', 'usage.exploded.v1', 'tenant', tenant, 'cost', '1'] }, good]);
    let stalled: () => void = () => undefined;
    const isStalled = new Promise<void>((resolve) => (stalled = resolve));
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    const stallingLedger: LedgerStore = {
      postEntry: (entry) => ledger.postEntry(entry),
      getBalance: (input) => ledger.getBalance(input),
      postEntries: async (entries, options) => {
        stalled();
        await released;
        return ledger.postEntries(entries, options);
      },
    };
    const zombie = new UsagePump(pumpRedis, stallingLedger, { claimMinIdleMs: 60_000 }).pumpBatch({ shard, claimCursor: '0-0' });
    await isStalled;
    // when its retry reclaims both entries and finishes, and then the stalled batch goes on
    await new Promise((resolve) => setTimeout(resolve, 20));
    const retry = await new UsagePump(pumpRedis, ledger, { claimMinIdleMs: 10 }).pumpBatch({ shard, claimCursor: '0-0' });
    release();
    const late = await zombie;
    // then the poison entry is a dead letter once, the good one ledgered once, nothing pending
    expect(retry).toMatchObject({ reclaimed: 2, deadLettered: 1, posted: 1 });
    expect(late).toMatchObject({ deadLettered: 0, duplicates: 1 });
    const dead = await redis.xrange(deadLetterStreamKey(shard), '-', '+');
    expect(dead.map(([, fields]) => fields[fields.indexOf('source_id') + 1])).toHaveLength(1);
    await expectLedgerMatches([good]);
    expect(await pendingCount(stream)).toBe(0);
  });

  it('dead-letters every copy of an event whose id already holds different data in the ledger, moving nothing', async () => {
    // given an event ledgered, then a different event under the same id
    const shard = freshShard();
    const stream = usageStreamKey(shard);
    const tenant = uniqueTenant();
    const original = reservedEvent({ requestId: 'same-id', tenant, bp: BP_NOV, cost: 10 });
    const forged = reservedEvent({ requestId: 'same-id', tenant, bp: BP_NOV, cost: 99 });
    const other = reservedEvent({ requestId: 'other', tenant, bp: BP_NOV, cost: 1 });
    await appendEvents(redis, stream, [original]);
    const pump = new UsagePump(pumpRedis, ledger);
    await drain(pump, shard);
    // when
    await appendEvents(redis, stream, [forged, other, forged]);
    const results = await drain(pump, shard);
    // then both copies of the forged event are dead letters, the other event is ledgered
    expect(sum(results, 'deadLettered')).toBe(2);
    expect(sum(results, 'posted')).toBe(1);
    expect(sum(results, 'duplicates')).toBe(0);
    const dead = await redis.xrange(deadLetterStreamKey(shard), '-', '+');
    expect(dead.map(([, fields]) => fields[fields.indexOf('reason') + 1])).toEqual([
      'ledger conflict: ledger entry same-id already exists with different data',
      'ledger conflict: ledger entry same-id already exists with different data',
    ]);
    await expectLedgerMatches([original, other]);
    expect(await pendingCount(stream)).toBe(0);
  });

  it('acknowledges nothing when DynamoDB cancels a transaction (TransactionConflict) or loses the reply of a committed one, and a retry ledgers each event once', async () => {
    // given a ledger client whose 2nd transaction is cancelled as a conflict and whose 4th commits but loses its reply
    // (DynamoDB Local never throws either: injected with SDK middleware)
    const faulty = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
    let transactions = 0;
    faulty.middlewareStack.add(
      (next) => async (args) => {
        if (!(args.input && typeof args.input === 'object' && 'TransactItems' in args.input)) return next(args);
        transactions += 1;
        if (transactions === 2) {
          throw new TransactionCanceledException({
            message: 'Transaction cancelled (injected)',
            $metadata: {},
            CancellationReasons: [{ Code: 'TransactionConflict' }],
          });
        }
        const output = await next(args);
        if (transactions === 4) throw new Error('socket hang up (injected, after the commit)');
        return output;
      },
      { step: 'initialize', name: 'injectTransactFaults' },
    );
    const shard = freshShard();
    const stream = usageStreamKey(shard);
    const tenants = [uniqueTenant(), uniqueTenant(), uniqueTenant()];
    const events = generateEvents({ tenants, periods: [BP_OCT, BP_NOV], requests: 150, random: seededRandom(13), prefix: 'f' });
    await appendEvents(redis, stream, events);
    const pump = new UsagePump(
      pumpRedis,
      new DynamoLedgerStore(faulty, { tablePrefix: config.dynamodb.tablePrefix, maxTransactItems: 20, transactionsInFlight: 4 }),
      {
        batchSize: 1_000,
        claimMinIdleMs: 1,
      },
    );
    try {
      // when the batch fails twice and is retried (reclaiming its pending entries) until it goes through
      const failures: unknown[] = [];
      let results: PumpBatchResult[] = [];
      for (let attempt = 0; attempt < 5 && results.length === 0; attempt += 1) {
        try {
          results = await drain(pump, shard);
        } catch (error) {
          failures.push(error);
          expect(await pendingCount(stream)).toBe(events.length);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      }
      // then the faults surfaced as retryable dependency errors (one attempt or two: a batch's transactions run
      // side by side, so both faults may land in the same attempt), and the ledger holds each event once
      expect(failures.length).toBeGreaterThanOrEqual(1);
      expect(failures.length).toBeLessThanOrEqual(2);
      for (const error of failures) expect(error instanceof DependencyError && error.code).toBe('DYNAMODB_UNAVAILABLE');
      expect(sum(results, 'duplicates')).toBeGreaterThan(0);
      expect(sum(results, 'posted') + sum(results, 'duplicates')).toBe(events.length);
      await expectLedgerMatches(events);
      expect(await pendingCount(stream)).toBe(0);
    } finally {
      faulty.destroy();
    }
  });
});
