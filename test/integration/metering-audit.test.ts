/**
 * The audit invariant end to end (DESIGN §6): requests decided and settled by
 * the real decider (lua/decide.lua, lua/settle.lua) append their usage events;
 * the pump ledgers them; for every tenant and period the ledger balance equals
 * the decider's admitted counter. This also checks the event contract against
 * what the scripts really write, not a hand-built copy.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
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
import {
  DynamoLedgerStore,
  MeteringAuditor,
  UsagePump,
  createDynamoClient,
  deadLetterStreamKey,
  ledgerTableName,
  parseShard,
  type AuditOutcome,
  type TenantPeriodAudit,
} from '../../src/metering/index.js';
import { DynamoPeriodStore } from '../../src/billing/index.js';
import { parseEventId, parseKeyId, parseLimitId, parseTenantId, systemClock, type TenantId } from '../../src/shared/index.js';
import { closeAfterAll } from '../support/teardown.js';
import { allocateShards, tenantInShards } from '../support/allocate.js';
import { readLedgerPartition } from '../support/ledger.js';
import { testConfig } from '../support/stack.js';
import { AdmittedRecord, monthStartMs, runTraffic } from '../support/traffic.js';
import { reservedEvent, seededRandom } from '../support/usage-events.js';
import { MONTH } from '../support/time.js';

const config = testConfig();
// 16384 logical shards; this file only uses tenants whose shard is in its allocated range (no other test appends there).
const SHARDS = 16_384;
const range = allocateShards(256);
const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
let redis: DeciderRedis;

beforeAll(async () => {
  redis = await connectDeciderRedis({ url: config.redis.url, commandTimeoutMs: 5_000 });
});

closeAfterAll(() => [redis, dynamo]);

/** A fresh tenant whose shard, and the `parts - 1` after it (a whale's sub-shards), are this file's. */
const tenantInRange = (parts = 1): TenantId => tenantInShards(range, 'audit', parts);

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
      for (let cursor = '0-0'; ;) {
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

describe('MeteringAuditor', () => {
  const auditor = (): MeteringAuditor =>
    new MeteringAuditor(redis, dynamo, { shardCount: SHARDS, tablePrefix: config.dynamodb.tablePrefix });
  const ledger = (): DynamoLedgerStore => new DynamoLedgerStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix, maxTransactItems: 20 });

  async function drain(shards: Iterable<number>): Promise<void> {
    const pump = new UsagePump(redis, ledger(), { batchSize: 50 });
    for (const raw of new Set(shards)) {
      const shard = parseShard(raw);
      for (let cursor = '0-0'; ;) {
        const result = await pump.pumpBatch({ shard, claimCursor: cursor });
        cursor = result.claimCursor;
        if (result.read === 0) break;
      }
    }
  }

  async function audited(tenant: string, periodStartMs: number, isWhale = false): Promise<TenantPeriodAudit> {
    const outcome = await auditor().auditTenantPeriod({ tenant, periodStartMs, isWhale });
    if (outcome.kind !== 'audited') throw new Error(`not audited: ${JSON.stringify(outcome)}`);
    return outcome.report;
  }

  it('reports no drift before, during and after pumping: unacknowledged events count as in flight, never as drift', async () => {
    // given traffic of two tenants through the real decider, nothing pumped yet
    const decider = new RedisDecider(redis, { shardCount: SHARDS, clock: systemClock });
    const tenants = [tenantInRange(), tenantInRange()];
    const record = new AdmittedRecord();
    await runTraffic({ decider, tenants, requests: 60, random: seededRandom(41), record });
    const periodStartMs = monthStartMs(Date.now());
    const expected = (tenant: string): number => record.byPeriod.get(`${tenant}|${new Date(periodStartMs).toISOString()}`)?.amount ?? 0;

    // then everything is in flight
    for (const tenant of tenants) {
      expect(await audited(tenant, periodStartMs)).toMatchObject({
        admitted: expected(tenant),
        ledgered: 0,
        inFlight: expected(tenant),
        drift: 0,
        duplicateEvents: 0,
      });
    }

    // when a batch is ledgered but its entries stay pending (the pump stops before XACK)
    const shard = parseShard(shardOf(parseTenantId(tenants[0] ?? ''), SHARDS));
    const stopped = new UsagePump(redis, ledger(), { batchSize: 25 });
    await expect(
      stopped.pumpBatch({
        shard,
        claimCursor: '0-0',
        onStage: (stage) => {
          if (stage === 'ledger-written') throw new Error('crash before XACK');
        },
      }),
    ).rejects.toThrow('crash before XACK');
    const midway = await audited(tenants[0] ?? '', periodStartMs);
    // then the ledgered-but-pending entries are counted once (in the ledger, not in flight)
    expect(midway.drift).toBe(0);
    expect(midway.ledgered + midway.inFlight).toBe(expected(tenants[0] ?? ''));
    expect(midway.ledgered).not.toBe(0);

    // when everything is pumped
    await drain(tenants.map((tenant) => shardOf(parseTenantId(tenant), SHARDS)));
    for (const tenant of tenants) {
      expect(await audited(tenant, periodStartMs)).toMatchObject({
        admitted: expected(tenant),
        ledgered: expected(tenant),
        inFlight: 0,
        drift: 0,
        duplicateEvents: 0,
      });
    }
  });

  it('reports real drift: a counter moved without its event, and an event that never reached the ledger', async () => {
    // given a tenant fully pumped
    const decider = new RedisDecider(redis, { shardCount: SHARDS, clock: systemClock });
    const tenant = tenantInRange();
    const record = new AdmittedRecord();
    await runTraffic({ decider, tenants: [tenant], requests: 10, random: seededRandom(43), record });
    const shard = shardOf(tenant, SHARDS);
    await drain([shard]);
    const periodStartMs = monthStartMs(Date.now());
    // when the counter moves by 7 with no event (e.g. a lost stream entry)
    await redis.incrby(admittedKey(shard, tenant, periodStartMs), 7);
    // then
    expect(await audited(tenant, periodStartMs)).toMatchObject({ drift: 7, inFlight: 0 });
    // and the shard page reports it among its outcomes
    const outcomes: AuditOutcome[] = [];
    for (let cursor: string | undefined = '0'; cursor !== undefined;) {
      const page = await auditor().auditShard({ shard, cursor, count: 1_000 });
      outcomes.push(...page.outcomes);
      cursor = page.next === null ? undefined : page.next.cursor;
    }
    const mine = outcomes.find((outcome) => outcome.kind === 'audited' && outcome.report.tenant === tenant);
    expect(mine).toMatchObject({ kind: 'audited', report: { drift: 7 } });

    // when an admitted event (counter +5) reuses a ledgered event id with different data: the ledger will never take
    // it (the pump dead-letters it as a conflict), and the audit says so at once, not only after the pump ran
    const ledgered = record.byPeriod.get(`${tenant}|${new Date(periodStartMs).toISOString()}`)?.eventIds[0] ?? '';
    await redis.incrby(admittedKey(shard, tenant, periodStartMs), 5);
    await redis.xadd(
      usageStreamKey(shard),
      '*',
      ...reservedEvent({ requestId: ledgered, tenant, bp: periodStartMs, cost: 5, op: 'otherOperation' }).fields,
    );
    expect(await audited(tenant, periodStartMs)).toMatchObject({ drift: 12, inFlight: 0 });
    await drain([shard]);
    expect(await redis.xlen(deadLetterStreamKey(shard))).toBeGreaterThan(0);
    expect(await audited(tenant, periodStartMs)).toMatchObject({ drift: 12, inFlight: 0 });
  });

  it("sums a whale tenant's sub-shard parts, each with its own stream", async () => {
    // given a tenant split over 4 parts (consecutive shards)
    const decider = new RedisDecider(redis, { shardCount: SHARDS, clock: systemClock });
    const tenant = tenantInRange(4);
    const record = new AdmittedRecord();
    await runTraffic({ decider, tenants: [tenant], requests: 40, random: seededRandom(47), record, subShards: 4 });
    const periodStartMs = monthStartMs(Date.now());
    const expected = record.byPeriod.get(`${tenant}|${new Date(periodStartMs).toISOString()}`)?.amount;
    // then before any pumping all of it is in flight, each stream entry counted once (part 0 shares the unsplit shard)
    expect(await audited(tenant, periodStartMs, true)).toMatchObject({
      admitted: expected,
      inFlight: expected,
      drift: 0,
      duplicateEvents: 0,
      parts: 4,
    });
    // when half is pumped (parts 0 and 1), then all
    const base = shardOf(tenant, SHARDS);
    await drain([base, base + 1]);
    const half = await audited(tenant, periodStartMs, true);
    expect(half).toMatchObject({ admitted: expected, drift: 0, duplicateEvents: 0 });
    expect(half.parts).toBeGreaterThan(1);
    await drain([base + 2, base + 3]);
    expect(await audited(tenant, periodStartMs, true)).toMatchObject({
      admitted: expected,
      ledgered: expected,
      inFlight: 0,
      drift: 0,
      duplicateEvents: 0,
    });
    // and a page that found only a part key audits the whole tenant
    const page = await auditor().auditShard({ shard: base + 2, count: 100_000 });
    const mine = page.outcomes.find((outcome) => outcome.kind === 'audited' && outcome.report.tenant === tenant);
    expect(mine).toMatchObject({ report: { admitted: expected, drift: 0, duplicateEvents: 0 } });
  });

  it('counts a late credit toward its original period, as the ledger writes it once the period is finalized', async () => {
    // given a pumped tenant whose period P is then finalized (the account workflow's act at the end of the grace)
    const decider = new RedisDecider(redis, { shardCount: SHARDS, clock: systemClock });
    const tenant = tenantInRange();
    const record = new AdmittedRecord();
    await runTraffic({ decider, tenants: [tenant], requests: 5, random: seededRandom(53), record });
    await drain([shardOf(tenant, SHARDS)]);
    const periodStartMs = monthStartMs(Date.now());
    const p = new Date(periodStartMs).toISOString();
    const q = new Date(Date.UTC(new Date(periodStartMs).getUTCFullYear(), new Date(periodStartMs).getUTCMonth() + 1, 1)).toISOString();
    const expected = record.byPeriod.get(`${tenant}|${p}`)?.amount ?? 0;
    await new DynamoPeriodStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix }).finalize({
      tenant,
      periodStart: p,
      nextPeriodStart: q,
      nowMs: Date.now(),
    });
    // when a late event of P (the decider counted it in P) reaches the ledger, twice (a retry)
    const late = 13;
    await redis.incrby(admittedKey(shardOf(tenant, SHARDS), tenant, periodStartMs), late);
    const ledger = new DynamoLedgerStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
    const entry = { tenant, periodStart: p, eventId: parseEventId('late-1'), kind: 'usage.reserved.v1', amount: late, operation: 'op' };
    expect(await ledger.postEntry(entry)).toEqual({ isDuplicate: false, creditedPeriodStart: q });
    expect(await ledger.postEntry(entry)).toEqual({ isDuplicate: true, creditedPeriodStart: q });
    // then it is billed in Q, yet the audit finds P whole and Q holding nothing of its own
    expect(await ledger.getBalance({ tenant, periodStart: q })).toMatchObject({ amount: late, entries: 1 });
    expect(await audited(tenant, periodStartMs)).toMatchObject({
      admitted: expected + late,
      ledgered: expected + late,
      drift: 0,
      duplicateEvents: 0,
    });
    expect(await audited(tenant, Date.parse(q))).toMatchObject({ admitted: 0, ledgered: 0, drift: 0, duplicateEvents: 0 });
  });
});

describe('MeteringAuditor under concurrent traffic and pumping', () => {
  it('never reports drift while requests are decided and the pump ledgers them at the same time', async () => {
    // given a tenant whose requests and pump batches run while it is audited again and again
    const auditor = new MeteringAuditor(redis, dynamo, { shardCount: SHARDS, tablePrefix: config.dynamodb.tablePrefix });
    const decider = new RedisDecider(redis, { shardCount: SHARDS, clock: systemClock });
    const tenant = tenantInRange();
    const shard = parseShard(shardOf(tenant, SHARDS));
    const pump = new UsagePump(redis, new DynamoLedgerStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix, maxTransactItems: 10 }), {
      batchSize: 7,
    });
    const record = new AdmittedRecord();
    let isTrafficDone = false;
    const traffic = runTraffic({
      decider,
      tenants: [tenant],
      requests: 150,
      random: seededRandom(59),
      record,
      between: async (index) => {
        // bursts of 10 requests with short pauses: the audit sees the tenant both moving and still
        if (index % 10 === 9) await new Promise((resolve) => setTimeout(resolve, 30));
      },
    }).finally(() => {
      isTrafficDone = true;
    });
    const pumping = (async () => {
      for (let cursor = '0-0'; ;) {
        const result = await pump.pumpBatch({ shard, claimCursor: cursor });
        cursor = result.claimCursor;
        if (result.read === 0 && isTrafficDone) return;
      }
    })();
    // when audits run meanwhile
    const outcomes: AuditOutcome[] = [];
    const periodStartMs = monthStartMs(Date.now());
    while (!isTrafficDone) outcomes.push(await auditor.auditTenantPeriod({ tenant, periodStartMs }));
    await Promise.all([traffic, pumping]);
    outcomes.push(await auditor.auditTenantPeriod({ tenant, periodStartMs }));
    // then every audit that settled found no drift, and the last one matches the client's record exactly
    const audits = outcomes.flatMap((outcome) => (outcome.kind === 'audited' ? [outcome.report] : []));
    console.log(`[metering-audit] ${outcomes.length} audits during traffic, ${outcomes.length - audits.length} unsettled (busy)`);
    expect(audits.length).toBeGreaterThan(1);
    expect(audits.filter((report) => report.drift !== 0)).toEqual([]);
    const expected = record.byPeriod.get(`${tenant}|${new Date(periodStartMs).toISOString()}`)?.amount;
    expect(audits.at(-1)).toMatchObject({ admitted: expected, ledgered: expected, inFlight: 0, drift: 0, duplicateEvents: 0 });
  });
});
