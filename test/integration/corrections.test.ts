/**
 * Corrections (`correction.v1`, issue 15 item 4) with the real decider scripts, pump, ledger and audit:
 * a debit, a credit, a retried correction and one into a finalized period each move the ledger and the
 * admitted counter together, so the audit reports zero drift before the pump, while it runs and after;
 * the statements include them (the finalized period's correction through the late-event path), with
 * reason and author on the ledger entry. Bad input is refused with every problem.
 */
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { DynamoAccountStore, DynamoPeriodStore, applyCorrection, type CorrectionInput } from '../../src/billing/index.js';
import { RedisDecider, admittedKey, connectDeciderRedis, shardOf, type DeciderRedis } from '../../src/decider/index.js';
import {
  DynamoLedgerStore,
  MeteringAuditor,
  UsagePump,
  createDynamoClient,
  ledgerTableName,
  parseShard,
  type TenantPeriodAudit,
} from '../../src/metering/index.js';
import { NotFoundError, ValidationError, systemClock, type TenantId } from '../../src/shared/index.js';
import { allocateShards, tenantInShards } from '../support/allocate.js';
import { closeAfterAll } from '../support/teardown.js';
import { testConfig } from '../support/stack.js';
import { AdmittedRecord, MONTH, monthStartMs, runTraffic } from '../support/traffic.js';
import { seededRandom } from '../support/usage-events.js';

const config = testConfig();
const SHARDS = 16_384;
const range = allocateShards(16);
const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
const accounts = new DynamoAccountStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
const periods = new DynamoPeriodStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
const ledger = new DynamoLedgerStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
const PRICE = { currency: 'EUR', baseFeeMicros: 0, includedUnits: 0, tiers: [{ unitPriceMicros: 1 }] };
let redis: DeciderRedis;

beforeAll(async () => {
  redis = await connectDeciderRedis({ url: config.redis.url, commandTimeoutMs: 5_000 });
});

closeAfterAll(() => [redis, dynamo]);

const iso = (ms: number): string => new Date(ms).toISOString();

async function audited(tenant: string, periodStartMs: number): Promise<TenantPeriodAudit> {
  const auditor = new MeteringAuditor(redis, dynamo, { shardCount: SHARDS, tablePrefix: config.dynamodb.tablePrefix });
  const outcome = await auditor.auditTenantPeriod({ tenant, periodStartMs });
  if (outcome.kind !== 'audited') throw new Error(`not audited: ${JSON.stringify(outcome)}`);
  return outcome.report;
}

/** Pumps the tenant's shard until its stream is read; answers how many entries were dead-lettered. */
async function drain(tenant: TenantId): Promise<number> {
  const pump = new UsagePump(redis, ledger, { batchSize: 50 });
  const shard = parseShard(shardOf(tenant, SHARDS));
  let deadLettered = 0;
  for (let cursor = '0-0'; ;) {
    const result = await pump.pumpBatch({ shard, claimCursor: cursor });
    deadLettered += result.deadLettered;
    cursor = result.claimCursor;
    if (result.read === 0) return deadLettered;
  }
}

async function entryItem(tenant: string, periodStart: string, eventId: string): Promise<Record<string, string | undefined>> {
  const reply = await dynamo.send(
    new GetItemCommand({
      TableName: ledgerTableName(config.dynamodb.tablePrefix),
      Key: { pk: { S: `tenant#${tenant}#period#${periodStart}` }, sk: { S: `entry#${eventId}` } },
      ConsistentRead: true,
    }),
  );
  const item = reply.Item ?? {};
  return Object.fromEntries(Object.entries(item).map(([name, value]) => [name, value.S ?? value.N]));
}

describe('applyCorrection', () => {
  it('debits, credits, a retry and a finalized period: the audit stays at zero drift and statements include them', async () => {
    // given a tenant with an account (monthly, UTC) and real traffic this month
    const tenant = tenantInShards(range, 'corr');
    await accounts.put({ tenant, billingPeriod: MONTH, price: PRICE }, Date.now());
    const record = new AdmittedRecord();
    const decider = new RedisDecider(redis, { shardCount: SHARDS, clock: systemClock });
    await runTraffic({ decider, tenants: [tenant], requests: 20, random: seededRandom(7), record });
    const currentMs = monthStartMs(Date.now());
    const previousMs = monthStartMs(currentMs - 1);
    const traffic = record.byPeriod.get(`${tenant}|${iso(currentMs)}`)?.amount ?? 0;
    expect(traffic).toBeGreaterThan(0);
    // and last month finalized (as the account workflow does after the grace window): its events go to this month
    await periods.finalize({ tenant, periodStart: iso(previousMs), nextPeriodStart: iso(currentMs), nowMs: Date.now() });

    // when an admin debits 50, credits 20, retries the debit, and debits 30 into last month (retried too), at once
    const deps = { redis, shardCount: SHARDS, accounts };
    const correction = (id: string, units: number, atMs: number): CorrectionInput => ({
      id,
      tenant,
      atMs,
      units,
      reason: `ticket ${id}: metering fix`,
      author: 'ops@example.com',
    });
    const results = await Promise.all([
      applyCorrection(deps, correction('debit-1', 50, Date.now())),
      applyCorrection(deps, correction('credit-1', -20, Date.now())),
      applyCorrection(deps, correction('late-1', 30, previousMs + 3_600_000)),
    ]);
    expect(results.map((result) => [result.eventId, result.periodStart, result.isNew])).toEqual([
      ['correction.debit-1', iso(currentMs), true],
      ['correction.credit-1', iso(currentMs), true],
      ['correction.late-1', iso(previousMs), true],
    ]);
    const retries = await Promise.all([
      applyCorrection(deps, correction('debit-1', 50, Date.now())),
      applyCorrection(deps, correction('late-1', 30, previousMs + 3_600_000)),
    ]);
    expect(retries.map((result) => result.isNew)).toEqual([false, false]);

    // then before the pump: the counters moved once, the corrections are in flight, no drift
    const shard = shardOf(tenant, SHARDS);
    expect(Number(await redis.get(admittedKey(shard, tenant, currentMs)))).toBe(traffic + 30);
    expect(await audited(tenant, currentMs)).toMatchObject({ admitted: traffic + 30, drift: 0, duplicateEvents: 0 });
    expect(await audited(tenant, previousMs)).toMatchObject({ admitted: 30, ledgered: 0, inFlight: 30, drift: 0 });

    // when the pump ledgers everything (and a correction retried after it changes nothing)
    expect(await drain(tenant)).toBe(0);
    expect((await applyCorrection(deps, correction('credit-1', -20, Date.now()))).isNew).toBe(false);
    expect(await drain(tenant)).toBe(0);

    // then the audit: zero drift, all ledgered, last month's correction counted in last month
    expect(await audited(tenant, currentMs)).toMatchObject({ admitted: traffic + 30, ledgered: traffic + 30, inFlight: 0, drift: 0 });
    expect(await audited(tenant, previousMs)).toMatchObject({ admitted: 30, ledgered: 30, inFlight: 0, drift: 0 });
    // and this month's statement includes both corrections and, as late units, last month's
    const { statement } = await periods.writeStatement({
      tenant,
      periodStart: iso(currentMs),
      periodEnd: iso(monthStartMs(currentMs + 40 * 86_400_000)),
      version: 1,
      isFinal: false,
      price: PRICE,
      nowMs: Date.now(),
    });
    expect(statement.usage).toMatchObject({ units: traffic + 60, lateUnits: 30, lateEntries: 1 });
    expect(statement.usage.byKind['correction.v1']).toBe(60);
    expect(statement.price.totalMicros).toBe(traffic + 60);
    // and each entry says why and who, once (the late one in this month, marked with its own period)
    expect(await entryItem(tenant, iso(currentMs), 'correction.debit-1')).toMatchObject({
      kind: 'correction.v1',
      amount: '50',
      reason: 'ticket debit-1: metering fix',
      author: 'ops@example.com',
    });
    expect(await entryItem(tenant, iso(currentMs), 'correction.late-1')).toMatchObject({ amount: '30', lateOf: iso(previousMs) });
    expect(await entryItem(tenant, iso(previousMs), 'correction.late-1')).toEqual({});
  });

  it('refuses bad input with every problem, and a tenant with neither account nor default period', async () => {
    const deps = { redis, shardCount: SHARDS, accounts };
    const tenant = tenantInShards(range, 'corr');
    const error = await applyCorrection(deps, { id: 'Bad Id', tenant, atMs: Date.now(), units: 0, reason: ' ', author: '' }).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).details).toEqual({
      problems: [
        'id must be 1-64 characters of a-z, 0-9, "_", "-"',
        'units must be a non-zero safe integer',
        'reason must be 1..500 characters without control characters',
        'author must be 1..128 characters without control characters',
      ],
    });
    const input = { id: 'c1', tenant, atMs: Date.now(), units: 5, reason: 'goodwill', author: 'ops' };
    await expect(applyCorrection(deps, input)).rejects.toBeInstanceOf(NotFoundError);
    // with the plan's period as the default, it is made, in that period
    const made = await applyCorrection(deps, { ...input, defaultPeriod: MONTH });
    expect(made).toMatchObject({ isNew: true, periodStart: iso(monthStartMs(Date.now())) });
    expect(await drain(tenant)).toBe(0);
    expect(await audited(tenant, monthStartMs(Date.now()))).toMatchObject({ admitted: 5, ledgered: 5, drift: 0 });
  });
});
