/**
 * The account's DynamoDB side on DynamoDB Local, without Temporal: account
 * settings (validation, round trip), statements (totals from the entries,
 * pricing, versions, a replayed close), finalization and late events (credited
 * to the next open period with `lateOf`, a retry stays a duplicate), warning
 * records (pending → delivered once).
 */
import { describe, expect, it } from 'vitest';
import { DynamoAccountStore, DynamoPeriodStore, type AccountSettings } from '../../src/billing/index.js';
import { DynamoLedgerStore, createDynamoClient, ledgerTableName, type LedgerEntry } from '../../src/metering/index.js';
import { ValidationError, parseEventId, parseTenantId, type TenantId } from '../../src/shared/index.js';
import { closeAfterAll } from '../support/teardown.js';
import { readLedgerPartition } from '../support/ledger.js';
import { testConfig, uniqueTenant } from '../support/stack.js';

const config = testConfig();
const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
const ledger = new DynamoLedgerStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
const periods = new DynamoPeriodStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
const accounts = new DynamoAccountStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
const table = ledgerTableName(config.dynamodb.tablePrefix);

closeAfterAll(() => [dynamo]);

const P1 = '2026-10-01T00:00:00.000Z';
const P2 = '2026-11-01T00:00:00.000Z';
const P3 = '2026-12-01T00:00:00.000Z';
const PRICE = {
  currency: 'EUR',
  baseFeeMicros: 1_000_000,
  includedUnits: 100,
  tiers: [{ upToUnits: 50, unitPriceMicros: 300 }, { unitPriceMicros: 100 }],
};

function entry(tenant: TenantId, id: string, amount: number, periodStart = P1, operation = 'listProducts'): LedgerEntry {
  return { tenant, periodStart, eventId: parseEventId(id), kind: 'usage.reserved.v1', amount, operation };
}

describe('account settings', () => {
  it('round-trips valid settings and refuses invalid ones with ACCOUNT_INVALID naming every problem', async () => {
    const tenant = parseTenantId(uniqueTenant('a'));
    const settings: AccountSettings = {
      tenant,
      billingPeriod: { unit: 'month', anchorDay: 15, timeZone: 'Europe/Paris' },
      webhookUrl: 'https://hooks.example.com/tollgate',
      webhookSecret: 'a-long-enough-secret',
      price: PRICE,
    };
    await accounts.put(settings, 1);
    expect(await accounts.get(tenant)).toEqual(settings);
    expect(await accounts.listTenants()).toContain(tenant);

    const bad = {
      ...settings,
      billingPeriod: { unit: 'week', anchorDay: 0, timeZone: 'Mars/Base' },
      webhookUrl: 'http://hooks.example.com/x',
      webhookSecret: 'short',
      price: { ...PRICE, currency: 'eur' },
    };
    const error = await accounts.put(bad as unknown as AccountSettings, 2).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).code).toBe('ACCOUNT_INVALID');
    expect((error as ValidationError).details['problems']).toEqual([
      'billingPeriod.unit must be second, day or month',
      'webhookUrl must use https (http only for loopback)',
      'webhookSecret of at least 16 characters is required with a webhookUrl',
      'price.currency must be an ISO 4217 code (3 capital letters)',
    ]);
    expect(await accounts.get(tenant)).toEqual(settings);
  });
});

describe('statements, finalization and late events', () => {
  it('prices the period from its entries, accepts events until finalized, then credits them to the next period once', async () => {
    // given a period with entries of two operations
    const tenant = parseTenantId(uniqueTenant('l'));
    await ledger.postEntries([
      entry(tenant, 'e1', 100),
      entry(tenant, 'e2', 40, P1, 'exportOrders'),
      { ...entry(tenant, 'e1.settled', -10), kind: 'usage.settled.v1' },
    ]);

    // when the period closes (statement v1), and a replayed close runs again
    const closed = await periods.writeStatement({
      tenant,
      periodStart: P1,
      periodEnd: P2,
      version: 1,
      isFinal: false,
      price: PRICE,
      nowMs: 10,
    });
    const replayed = await periods.writeStatement({
      tenant,
      periodStart: P1,
      periodEnd: P2,
      version: 1,
      isFinal: false,
      price: PRICE,
      nowMs: 99,
    });

    // then totals are the ledger's, priced: 130 units = 100 included + 30 at 300 micros
    expect(closed.isWritten).toBe(true);
    expect(closed.statement.usage).toEqual({
      units: 130,
      entries: 3,
      lateUnits: 0,
      lateEntries: 0,
      byOperation: { listProducts: 90, exportOrders: 40 },
      byKind: { 'usage.reserved.v1': 140, 'usage.settled.v1': -10 },
    });
    expect(closed.statement.price.totalMicros).toBe(1_000_000 + 30 * 300);
    expect(replayed).toEqual({ statement: closed.statement, isWritten: false });
    expect((await ledger.getBalance({ tenant, periodStart: P1 })).amount).toBe(130);

    // when an event of the period arrives within the grace window
    expect(await ledger.postEntry(entry(tenant, 'e3', 70))).toEqual({ isDuplicate: false, creditedPeriodStart: P1 });
    // and the period is finalized and re-rated
    await periods.finalize({ tenant, periodStart: P1, nextPeriodStart: P2, nowMs: 20 });
    const final = await periods.writeStatement({
      tenant,
      periodStart: P1,
      periodEnd: P2,
      version: 2,
      isFinal: true,
      price: PRICE,
      nowMs: 21,
    });
    // then the final statement counts it: 200 units = 100 included + 50 at 300 + 50 at 100
    expect(final.statement).toMatchObject({ version: 2, isFinal: true, usage: { units: 200, entries: 4 } });
    expect(final.statement.price.totalMicros).toBe(1_000_000 + 50 * 300 + 50 * 100);

    // when events of the finalized period arrive (one alone, one in a batch with an event of the next period)
    const late = await ledger.postEntry(entry(tenant, 'e4', 5));
    const batch = await ledger.postEntries([entry(tenant, 'e5', 6), entry(tenant, 'n1', 1000, P2), entry(tenant, 'e1', 100)]);
    // then they are credited to the next period with a reference to theirs; the old one does not move
    expect(late).toEqual({ isDuplicate: false, creditedPeriodStart: P2 });
    expect(batch).toMatchObject({ posted: 2, duplicates: 1, late: 1, conflicts: [] });
    const p1 = await readLedgerPartition(dynamo, { table, tenant, periodStart: P1 });
    const p2 = await readLedgerPartition(dynamo, { table, tenant, periodStart: P2 });
    expect(p1.balance).toEqual({ amount: 200, entries: 4 });
    expect(p2.balance).toEqual({ amount: 1011, entries: 3 });
    expect(p2.entryIds).toEqual(['e4', 'e5', 'n1']);
    expect(await periods.readUsage({ tenant, periodStart: P2 })).toMatchObject({ units: 1011, lateUnits: 11, lateEntries: 2 });

    // when the late posts are retried, then they are duplicates found in the next period: nothing moves
    expect(await ledger.postEntry(entry(tenant, 'e4', 5))).toEqual({ isDuplicate: true, creditedPeriodStart: P2 });
    expect(await ledger.postEntries([entry(tenant, 'e5', 6)])).toMatchObject({ posted: 0, duplicates: 1, late: 0 });
    expect((await ledger.getBalance({ tenant, periodStart: P2 })).amount).toBe(1011);

    // when the next period is finalized too, then a late event of the first walks on to the third, still marked lateOf the first
    await periods.finalize({ tenant, periodStart: P2, nextPeriodStart: P3, nowMs: 30 });
    expect(await ledger.postEntry(entry(tenant, 'e6', 7))).toEqual({ isDuplicate: false, creditedPeriodStart: P3 });
    expect(await ledger.postEntry(entry(tenant, 'e4', 5))).toEqual({ isDuplicate: true, creditedPeriodStart: P2 });
    expect((await ledger.getBalance({ tenant, periodStart: P3 })).amount).toBe(7);
    // a finalization is set once
    expect(await periods.finalize({ tenant, periodStart: P1, nextPeriodStart: P3, nowMs: 40 })).toEqual({ finalizedAtMs: 20 });
  });
});

describe('warning records', () => {
  it('are created pending once and finished once', async () => {
    const tenant = parseTenantId(uniqueTenant('w'));
    const ref = { tenant, periodStart: P1, limitId: 'month', percent: 80 };
    expect(await periods.beginWarning({ ...ref, idempotencyKey: 'k', nowMs: 1 })).toMatchObject({ status: 'pending', idempotencyKey: 'k' });
    expect(await periods.beginWarning({ ...ref, idempotencyKey: 'k', nowMs: 2 })).toMatchObject({ status: 'pending', createdAtMs: 1 });
    expect(await periods.finishWarning({ ...ref, status: 'delivered', nowMs: 3 })).toMatchObject({ status: 'delivered', finishedAtMs: 3 });
    expect(await periods.finishWarning({ ...ref, status: 'skipped', nowMs: 4 })).toMatchObject({ status: 'delivered', finishedAtMs: 3 });
    expect(await periods.beginWarning({ ...ref, idempotencyKey: 'k', nowMs: 5 })).toMatchObject({ status: 'delivered' });
  });
});
