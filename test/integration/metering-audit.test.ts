/**
 * The audit invariant end to end (DESIGN §6): requests decided and settled by
 * the real decider (lua/decide.lua, lua/settle.lua) append their usage events;
 * the pump ledgers them; for every tenant and period the ledger balance equals
 * the decider's admitted counter. This also checks the event contract against
 * what the scripts really write, not a hand-built copy.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RedisDecider,
  admittedKey,
  connectDeciderRedis,
  shardOf,
  usageStreamKey,
  type DeciderRedis,
  type DecideInput,
  type LimitSpec,
} from '../../src/decider/index.js';
import { DynamoLedgerStore, UsagePump, createDynamoClient, ledgerTableName, parseShard } from '../../src/metering/index.js';
import { parseEventId, parseKeyId, parseLimitId, parseTenantId, systemClock, type TenantId } from '../../src/shared/index.js';
import { readLedgerPartition } from '../support/ledger.js';
import { testConfig } from '../support/stack.js';
import { seededRandom } from '../support/usage-events.js';

const config = testConfig();
// 16384 logical shards; this file only uses tenants whose shard is in 15000..15999 (no other test appends there).
const SHARDS = 16_384;
const MONTH = { unit: 'month', anchorDay: 1, timeZone: 'UTC' } as const;
const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
let redis: DeciderRedis;

beforeAll(async () => {
  redis = await connectDeciderRedis({ url: config.redis.url, commandTimeoutMs: 5_000 });
});

afterAll(() => {
  redis.disconnect();
  dynamo.destroy();
});

function tenantInRange(): TenantId {
  for (;;) {
    const tenant = parseTenantId(`audit-${randomBytes(5).toString('hex')}`);
    const shard = shardOf(tenant, SHARDS);
    if (shard >= 15_000 && shard < 16_000) return tenant;
  }
}

const quota = (limit: number): LimitSpec => ({
  id: parseLimitId('month'),
  scope: 'tenant',
  algorithm: { kind: 'period-quota', limit, period: MONTH, thresholdsPercent: [] },
  mode: 'hard',
  onDeciderDown: 'open',
});

describe('ledger == admitted counter', () => {
  it('after decided, denied, refunded and overrun requests are pumped, every tenant balance equals its admitted counter', async () => {
    // given requests of three tenants through the real decider: some denied by the quota, most settled
    const decider = new RedisDecider(redis, { shardCount: SHARDS, clock: systemClock });
    const random = seededRandom(29);
    const tenants = [tenantInRange(), tenantInRange(), tenantInRange()];
    let admitted = 0;
    let denied = 0;
    let periodStartMs: number | undefined;
    for (let index = 0; index < 240; index += 1) {
      const tenant = tenants[index % tenants.length] as TenantId;
      const request: DecideInput = {
        tenant,
        keyId: parseKeyId('key-1'),
        requestId: parseEventId(`q${index}-${randomBytes(3).toString('hex')}`),
        operation: 'listProducts',
        cost: 1 + Math.floor(random() * 40),
        limits: [quota(900)],
        billingPeriod: MONTH,
        policyVersion: 2,
      };
      const decision = await decider.decide(request);
      if (decision.kind !== 'allowed') {
        denied += 1;
        continue;
      }
      admitted += 1;
      const nowDate = new Date(decision.nowMs);
      periodStartMs = Date.UTC(nowDate.getUTCFullYear(), nowDate.getUTCMonth(), 1);
      if (random() < 0.8) {
        const actual = Math.max(0, request.cost + Math.floor(random() * 16) - 11);
        await decider.settle({ ...request, actual, decidedAtMs: decision.nowMs });
      }
    }
    expect(admitted).toBeGreaterThan(0);
    expect(denied).toBeGreaterThan(0);
    // when each tenant's shard is pumped
    const ledger = new DynamoLedgerStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
    const pump = new UsagePump(redis, ledger, { batchSize: 100 });
    for (const tenant of tenants) {
      const shard = parseShard(shardOf(tenant, SHARDS));
      for (let cursor = '0-0'; ; ) {
        const result = await pump.pumpBatch({ shard, claimCursor: cursor });
        expect(result.deadLettered).toBe(0);
        cursor = result.claimCursor;
        if (result.read === 0) break;
      }
      expect(await redis.xlen(usageStreamKey(shard))).toBeLessThanOrEqual(1);
    }
    // then
    for (const tenant of tenants) {
      const shard = shardOf(tenant, SHARDS);
      const counter = Number((await redis.get(admittedKey(shard, tenant, periodStartMs ?? 0))) ?? '0');
      const partition = await readLedgerPartition(dynamo, {
        table: ledgerTableName(config.dynamodb.tablePrefix),
        tenant,
        periodStart: new Date(periodStartMs ?? 0).toISOString(),
      });
      expect(counter, tenant).toBeGreaterThan(0);
      expect(partition.balance?.amount, tenant).toBe(counter);
      expect(partition.entrySum, tenant).toBe(counter);
    }
  });
});
