/**
 * Exactly once while DynamoDB misbehaves: throttling
 * (`ThrottlingException`, `ProvisionedThroughputExceededException`),
 * transaction conflicts (`TransactionConflictException`,
 * `TransactionCanceledException` with `TransactionConflict` reasons) and 500s,
 * injected by SDK middleware in front of the real DynamoDB Local, some before
 * the request reaches it and some after it was applied (a lost reply). Every
 * failure must surface as a retryable `DYNAMODB_UNAVAILABLE`; retried batches
 * must recognise what was committed; the ledger must end equal to the
 * client's own record of admitted usage, with no duplicate and nothing pending.
 *
 * Its shards come from the test allocator. Replay with TOLLGATE_FAULT_SEED=<seed>.
 */
import { randomInt } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { RedisDecider, connectDeciderRedis, shardOf, usageStreamKey, type DeciderRedis } from '../../src/decider/index.js';
import {
  DynamoLedgerStore,
  MeteringAuditor,
  UsagePump,
  createDynamoClient,
  deadLetterStreamKey,
  ledgerTableName,
  parseShard,
} from '../../src/metering/index.js';
import { DependencyError, parseEventId, systemClock, type TenantId } from '../../src/shared/index.js';
import { closeAfterAll } from '../support/teardown.js';
import { allocateShards, tenantInShards } from '../support/allocate.js';
import { injectDynamoFaults } from '../support/dynamo-faults.js';
import { readLedgerPartition } from '../support/ledger.js';
import { testConfig } from '../support/stack.js';
import { AdmittedRecord, runTraffic } from '../support/traffic.js';
import { seededRandom } from '../support/usage-events.js';

const SHARDS = 16_384;
const range = allocateShards(256);
const config = testConfig();
const seed = Number(process.env['TOLLGATE_FAULT_SEED'] ?? randomInt(1, 2 ** 31));
const random = seededRandom(seed);
const clean = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
const faulty = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
const table = ledgerTableName(config.dynamodb.tablePrefix);
let redis: DeciderRedis;

beforeAll(async () => {
  console.log(`[metering-faults-dynamodb] seed ${seed} (replay with TOLLGATE_FAULT_SEED=${seed})`);
  redis = await connectDeciderRedis({ url: config.redis.url, commandTimeoutMs: 5_000 });
});

closeAfterAll(() => [redis, clean, faulty]);

const tenantInRange = (): TenantId => tenantInShards(range, 'ddbf');

describe('metering under DynamoDB throttling and transaction conflicts', () => {
  it(`ledgers every admitted unit exactly once through retried batches (seed ${seed})`, async () => {
    // given admitted traffic of three tenants (decided and settled by the real decider)
    const decider = new RedisDecider(redis, { shardCount: SHARDS, clock: systemClock });
    const tenants = [tenantInRange(), tenantInRange(), tenantInRange()];
    const record = new AdmittedRecord();
    await runTraffic({ decider, tenants, requests: 180, random, record });
    // and a DynamoDB that fails 30 % of calls before they arrive and 15 % of writes after they were applied
    const faults = injectDynamoFaults(faulty, {
      random,
      commands: ['TransactWriteItemsCommand', 'GetItemCommand'],
      beforeRate: 0.3,
      afterRate: 0.15,
    });
    const pump = new UsagePump(redis, new DynamoLedgerStore(faulty, { tablePrefix: config.dynamodb.tablePrefix, maxTransactItems: 8 }), {
      batchSize: 15,
      // a failed batch's entries are pending: the next batch reclaims them at once
      claimMinIdleMs: 1,
    });

    // when each shard is pumped, every failed batch retried as the workflow would
    const shards = [...new Set(tenants.map((tenant) => parseShard(shardOf(tenant, SHARDS))))];
    const failures = new Map<string, number>();
    let duplicates = 0;
    for (const shard of shards) {
      let cursor = '0-0';
      let idle = 0;
      while (idle < 2) {
        try {
          const result = await pump.pumpBatch({ shard, claimCursor: cursor });
          cursor = result.claimCursor;
          duplicates += result.duplicates;
          expect(result.deadLettered).toBe(0);
          idle = result.read === 0 ? idle + 1 : 0;
        } catch (error) {
          // then every injected fault is a retryable DYNAMODB_UNAVAILABLE (Temporal retries the activity)
          expect(error).toBeInstanceOf(DependencyError);
          expect(error).toMatchObject({ code: 'DYNAMODB_UNAVAILABLE', retryable: true });
          const name = error instanceof Error && error.cause instanceof Error ? error.cause.name : 'cancelled';
          failures.set(name, (failures.get(name) ?? 0) + 1);
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
      }
    }
    faults.enabled = false;
    console.log(
      `[metering-faults-dynamodb] injected before ${JSON.stringify(faults.before)}, after ${JSON.stringify(faults.after)}; failed batches ${JSON.stringify(Object.fromEntries(failures))}; duplicates ${duplicates}`,
    );

    // then the faults happened, on both sides of the write
    const sum = (counts: Record<string, number>): number => Object.values(counts).reduce((a, b) => a + b, 0);
    expect(sum(faults.before)).toBeGreaterThan(0);
    expect(sum(faults.after)).toBeGreaterThan(0);
    // and retries of committed transactions were recognised, not posted again
    expect(duplicates).toBeGreaterThan(0);
    // and the ledger is exactly the client's record, with each event once
    for (const [key, expected] of record.byPeriod) {
      const [tenant = '', periodStart = ''] = key.split('|');
      const partition = await readLedgerPartition(clean, { table, tenant, periodStart });
      expect(partition.balance, key).toEqual({ amount: expected.amount, entries: expected.eventIds.length });
      expect(partition.entrySum, key).toBe(expected.amount);
      expect(partition.entryIds, key).toEqual([...expected.eventIds].sort());
    }
    // and nothing is pending or dead-lettered
    for (const shard of shards) {
      const [pending] = (await redis.xpending(usageStreamKey(shard), 'meter')) as [number];
      expect(pending).toBe(0);
      expect(await redis.xlen(deadLetterStreamKey(shard))).toBe(0);
    }
    // and the audit agrees
    const auditor = new MeteringAuditor(redis, clean, { shardCount: SHARDS, tablePrefix: config.dynamodb.tablePrefix });
    for (const key of record.byPeriod.keys()) {
      const [tenant = '', periodStart = ''] = key.split('|');
      expect(await auditor.auditTenantPeriod({ tenant, periodStartMs: Date.parse(periodStart) })).toMatchObject({
        kind: 'audited',
        report: { drift: 0, inFlight: 0 },
      });
    }
  });

  it('postEntry (one entry per transaction) retried through the same faults posts each entry once', async () => {
    // given a faulty client
    const single = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
    const faults = injectDynamoFaults(single, {
      random,
      commands: ['TransactWriteItemsCommand', 'GetItemCommand'],
      beforeRate: 0.3,
      afterRate: 0.2,
    });
    const ledger = new DynamoLedgerStore(single, { tablePrefix: config.dynamodb.tablePrefix });
    const tenant = tenantInRange();
    const periodStart = '2026-11-01T00:00:00.000Z';
    // when 40 entries are posted, each retried until it succeeds
    let total = 0;
    let duplicates = 0;
    try {
      for (let index = 0; index < 40; index += 1) {
        const amount = 1 + Math.floor(random() * 30);
        total += amount;
        for (;;) {
          try {
            const result = await ledger.postEntry({
              tenant,
              periodStart,
              eventId: parseEventId(`single-${index}`),
              kind: 'usage.reserved.v1',
              amount,
              operation: 'op',
            });
            if (result.isDuplicate) duplicates += 1;
            break;
          } catch (error) {
            expect(error).toMatchObject({ code: 'DYNAMODB_UNAVAILABLE', retryable: true });
          }
        }
      }
    } finally {
      single.destroy();
    }
    // then
    expect(Object.values(faults.after).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(duplicates).toBeGreaterThan(0);
    const partition = await readLedgerPartition(clean, { table, tenant, periodStart });
    expect(partition.balance).toEqual({ amount: total, entries: 40 });
  });
});
