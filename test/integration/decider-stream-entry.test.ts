/**
 * One stream entry per decide.lua call (argument layout 6): the real decider appends every event a call admits as
 * one `usage.reserved.batch.v1` entry, and the real pump ledgers each of them exactly once (DynamoDB Local), with
 * a malformed batch entry, or a malformed event in one, dead-lettered and never guessed.
 */
import { Redis } from 'ioredis';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  RedisDecider,
  connectDeciderRedis,
  periodAt,
  usageStreamKey,
  type DecideInput,
  type DeciderRedis,
  type LimitSpec,
} from '../../src/decider/index.js';
import {
  DynamoLedgerStore,
  UsagePump,
  createDynamoClient,
  deadLetterStreamKey,
  ledgerTableName,
  parseShard,
  type PumpBatchResult,
} from '../../src/metering/index.js';
import { parseEventId, parseKeyId, parseLimitId, parseTenantId, systemClock } from '../../src/shared/index.js';
import { allocateRedisDb } from '../support/allocate.js';
import { readLedgerPartition } from '../support/ledger.js';
import { testConfig, uniqueTenant } from '../support/stack.js';
import { closeAfterAll } from '../support/teardown.js';

const config = testConfig();
const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
const ledger = new DynamoLedgerStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
const table = ledgerTableName(config.dynamodb.tablePrefix);
// a database of its own: one shard (0) holds every tenant, and no other file appends to its stream
const { url } = allocateRedisDb();
const MONTH = { unit: 'month', anchorDay: 1, timeZone: 'UTC' } as const;
const LIMITS: LimitSpec[] = [
  {
    id: parseLimitId('burst'),
    scope: 'tenant',
    algorithm: { kind: 'token-bucket', capacity: 1_000_000, refillAmount: 1_000, refillPeriodMs: 1_000 },
    mode: 'hard',
    onDeciderDown: 'open',
  },
];
let redis: Redis;
let deciderRedis: DeciderRedis;

beforeAll(async () => {
  redis = new Redis(url);
  deciderRedis = await connectDeciderRedis({ url, clusterNodes: undefined, commandTimeoutMs: 5_000 });
});

closeAfterAll(() => [redis, deciderRedis, dynamo]);

function input(tenant: string, requestId: string, cost: number): DecideInput {
  return {
    tenant: parseTenantId(tenant),
    keyId: parseKeyId('key-1'),
    requestId: parseEventId(requestId),
    operation: 'listProducts',
    cost,
    limits: LIMITS,
    billingPeriod: MONTH,
    policyVersion: 3,
  };
}

async function drain(pump: UsagePump): Promise<PumpBatchResult[]> {
  const results: PumpBatchResult[] = [];
  let claimCursor = '0-0';
  for (;;) {
    const result = await pump.pumpBatch({ shard: parseShard(0), claimCursor });
    results.push(result);
    claimCursor = result.claimCursor;
    if (result.read === 0) return results;
  }
}

describe('one stream entry per decide.lua call', () => {
  it('holds every event the call admitted; the pump ledgers each exactly once and dead-letters what does not read', async () => {
    // given 60 requests of two tenants decided concurrently (micro-batched into few calls), one sent twice in a batch
    const tenants = [uniqueTenant('se'), uniqueTenant('se')];
    const decider = new RedisDecider(deciderRedis, { shardCount: 1, clock: systemClock });
    const requests = Array.from({ length: 60 }, (_, index) => input(tenants[index % 2] as string, `se-${index}`, 1 + (index % 5)));
    const decisions = await Promise.all([...requests, requests[7] as DecideInput].map((request) => decider.decide(request)));
    const stream = usageStreamKey(parseShard(0));
    const entries = await redis.xrange(stream, '-', '+');
    // then the calls appended fewer entries than events, each naming its events' count, and every admitted
    // decision names the entry holding its event; the twin is a replay of the first, with no event of its own
    expect(decisions.every((decision) => decision.kind === 'allowed')).toBe(true);
    expect(decisions.at(-1)).toMatchObject({ isReplay: true, usageId: 'se-7' });
    expect(entries.length).toBeLessThan(requests.length);
    const lines = entries.flatMap(([, fields]) => (fields[fields.indexOf('events') + 1] ?? '').split('\n'));
    expect(lines).toHaveLength(requests.length);
    expect(entries.reduce((sum, [, fields]) => sum + Number(fields[fields.indexOf('n') + 1]), 0)).toBe(requests.length);
    for (const [index, decision] of decisions.slice(0, requests.length).entries()) {
      const entry = entries.find(([id]) => decision.kind === 'allowed' && id === decision.streamId);
      expect(entry?.[1][entry[1].indexOf('events') + 1]?.split('\n').some((line) => line.startsWith(`se-${index} `))).toBe(true);
    }
    // and when a batch entry whose count is wrong, and one with a malformed event, follow
    const bp = periodAt(MONTH, Date.now()).startMs;
    const [tenant] = tenants as [string];
    await redis.xadd(
      stream,
      '*',
      'type',
      'usage.reserved.batch.v1',
      'time_ms',
      String(Date.now()),
      'n',
      '2',
      'events',
      `x-1 ${tenant} key-1 op 1 3 ${bp} `,
    );
    const mixed = [`x-2 ${tenant} key-1 listProducts 4 3 ${bp} `, `x-3 ${tenant} key-1 listProducts 1.5 3 ${bp} `].join('\n');
    await redis.xadd(stream, '*', 'type', 'usage.reserved.batch.v1', 'time_ms', String(Date.now()), 'n', '2', 'events', mixed);
    const results = await drain(new UsagePump(deciderRedis, ledger, { batchSize: 3 }));
    // then each admitted request is ledgered once, x-2 too; the miscounted entry and x-3 are dead letters; all acknowledged
    const sum = (field: 'posted' | 'deadLettered' | 'acked' | 'read'): number =>
      results.reduce((total, result) => total + result[field], 0);
    expect(sum('posted')).toBe(requests.length + 1);
    expect(sum('deadLettered')).toBe(2);
    expect(sum('read')).toBe(entries.length + 2);
    expect(sum('acked')).toBe(entries.length + 2);
    expect((await redis.xpending(stream, 'meter'))[0]).toBe(0);
    const dead = await redis.xrange(deadLetterStreamKey(parseShard(0)), '-', '+');
    expect(dead.map(([, fields]) => fields[fields.indexOf('reason') + 1])).toEqual([
      'malformed usage.reserved.batch.v1 entry',
      'cost is not an integer string in [0, 2^53): "1.5"',
    ]);
    for (const [position, name] of tenants.entries()) {
      const mine = requests.filter((_, index) => index % 2 === position);
      const extra = position === 0 ? [{ requestId: 'x-2', cost: 4 }] : [];
      const partition = await readLedgerPartition(dynamo, { table, tenant: name, periodStart: new Date(bp).toISOString() });
      expect(partition.entryIds).toEqual([...mine, ...extra].map((request) => request.requestId).sort());
      expect(partition.entrySum).toBe([...mine, ...extra].reduce((total, request) => total + request.cost, 0));
    }
  });
});
