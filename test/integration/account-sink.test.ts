/**
 * The pump and its WarningSink (real Redis and DynamoDB Local; the sink is a
 * fake of our own port): the thresholds a batch crossed are handed over after
 * the ledger holds the batch and before it is acknowledged; a sink failure
 * leaves the batch pending, and the retry hands the same crossings again.
 */
import { Redis } from 'ioredis';
import { beforeAll, describe, expect, it } from 'vitest';
import { connectDeciderRedis, usageStreamKey, type DeciderRedis } from '../../src/decider/index.js';
import { DependencyError, parseTenantId } from '../../src/shared/index.js';
import {
  DynamoLedgerStore,
  UsagePump,
  createDynamoClient,
  parseShard,
  type CrossedThreshold,
  type WarningSink,
} from '../../src/metering/index.js';
import { closeAfterAll } from '../support/teardown.js';
import { allocateShards } from '../support/allocate.js';
import { testConfig, uniqueTenant } from '../support/stack.js';
import { appendEvents, reservedEvent } from '../support/usage-events.js';

const config = testConfig();
const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
const ledger = new DynamoLedgerStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
const BP = Date.UTC(2026, 10, 1);
let redis: Redis;
let pumpRedis: DeciderRedis;

beforeAll(async () => {
  redis = new Redis(config.redis.url);
  pumpRedis = await connectDeciderRedis({ url: config.redis.url, commandTimeoutMs: 5_000 });
});

closeAfterAll(() => [redis, pumpRedis, dynamo]);

describe('UsagePump with a WarningSink', () => {
  it('hands the crossed thresholds over after the ledger write and before XACK; a refused hand-over is retried whole', async () => {
    // given three events on a shard of this file's own, two of which crossed thresholds
    const shard = parseShard(allocateShards(1).first);
    const stream = usageStreamKey(shard);
    const tenant = uniqueTenant('k');
    const plain = reservedEvent({ requestId: 'k-1', tenant, bp: BP, cost: 5 });
    const crossed80 = reservedEvent({ requestId: 'k-2', tenant, bp: BP, cost: 5 });
    const crossedBoth = reservedEvent({ requestId: 'k-3', tenant, bp: BP, cost: 5 });
    await appendEvents(redis, stream, [
      plain,
      { fields: [...crossed80.fields, 'warn', 'month:80'] },
      { fields: [...crossedBoth.fields, 'warn', 'month:100,day:90'] },
    ]);
    const handed: CrossedThreshold[][] = [];
    let pendingAtHandOver = -1;
    let isRefusing = true;
    const sink: WarningSink = {
      notify: async (crossings) => {
        pendingAtHandOver = ((await redis.xpending(stream, 'meter')) as [number])[0];
        handed.push([...crossings]);
        if (isRefusing) throw new Error('account workflows unreachable');
      },
    };

    // when the sink refuses the first hand-over
    const pump = new UsagePump(pumpRedis, ledger, { warningSink: sink, claimMinIdleMs: 1 });
    const failure = await pump.pumpBatch({ shard, claimCursor: '0-0' }).catch((error: unknown) => error);

    // then the batch is ledgered but nothing is acknowledged
    expect(failure).toBeInstanceOf(DependencyError);
    expect((failure as DependencyError).code).toBe('DEPENDENCY_FAILED');
    expect(pendingAtHandOver).toBe(3);
    expect(((await redis.xpending(stream, 'meter')) as [number])[0]).toBe(3);
    expect(await ledger.getBalance({ tenant: parseTenantId(tenant), periodStart: new Date(BP).toISOString() })).toEqual({
      amount: 15,
      entries: 3,
    });

    // when the batch is retried (reclaimed) and the sink takes it
    isRefusing = false;
    await new Promise((resolve) => setTimeout(resolve, 5));
    const retried = await pump.pumpBatch({ shard, claimCursor: '0-0' });

    // then the same crossings were handed over again, the ledger moved once, and the batch is acknowledged
    expect(retried).toMatchObject({ reclaimed: 3, duplicates: 3, posted: 0, warnings: 3, acked: 3 });
    expect(handed).toHaveLength(2);
    expect(handed[1]).toEqual(handed[0]);
    expect(handed[0]).toEqual([
      { tenant, periodStartMs: BP, limitId: 'month', percent: 80, eventId: 'k-2' },
      { tenant, periodStartMs: BP, limitId: 'month', percent: 100, eventId: 'k-3' },
      { tenant, periodStartMs: BP, limitId: 'day', percent: 90, eventId: 'k-3' },
    ]);
    expect(((await redis.xpending(stream, 'meter')) as [number])[0]).toBe(0);
    expect((await ledger.getBalance({ tenant: parseTenantId(tenant), periodStart: new Date(BP).toISOString() })).amount).toBe(15);
  });
});
