/**
 * The tenant's billing period is the one source of truth for its periods (issue 15, item 3), through the
 * API as `npm start` runs it: two tenants on ONE plan, with accounts anchored on different days in
 * different zones, see their monthly quota reset at their own period end (the `RateLimit` header's `t`)
 * and have their usage counted in their own billing period (the admitted counter the audit and the
 * statements read); an account created while the API runs reaches it; an account whose billing unit
 * differs from its plan's, or a change of an existing account's period, is refused with the reason.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoAccountStore, type AccountSettings } from '../../src/billing/index.js';
import { admittedKey, periodAt, shardOf, type LimitSpec, type PeriodSpec } from '../../src/decider/index.js';
import { DynamoConfigStore, putAccountSettings } from '../../src/graphql/index.js';
import { createDynamoClient } from '../../src/metering/index.js';
import { ValidationError, parseLimitId, parsePlanId, parseTenantId } from '../../src/shared/index.js';
import { startApiServer, type ApiServer } from '../support/api-server.js';
import { waitFor } from '../support/poll.js';
import { testConfig, testStack, uniqueTenant } from '../support/stack.js';
import { MONTH } from '../support/time.js';

const DAY_MS = 86_400_000;
const scratch = mkdtempSync(join(tmpdir(), 'tollgate-tenant-period-'));
const config = testConfig();
const stack = testStack();
const dynamo = createDynamoClient({ endpoint: stack.dynamodbEndpoint, region: stack.dynamodbRegion });
const store = new DynamoConfigStore(dynamo, { tablePrefix: stack.tablePrefix });
const accounts = new DynamoAccountStore(dynamo, { tablePrefix: stack.tablePrefix });
const redis = new Redis(stack.redisUrl);
/** 7 units: the connection and its 6 nodes. */
const COST_7 = JSON.stringify({ query: '{ products(first: 6) { nodes { id } } }' });
const PRICE = { currency: 'EUR', baseFeeMicros: 0, includedUnits: 0, tiers: [{ unitPriceMicros: 1 }] };
const QUOTA: LimitSpec = {
  id: parseLimitId('monthly'),
  scope: 'tenant',
  // the plan's own calendar: UTC, the 1st
  algorithm: { kind: 'period-quota', limit: 1_000_000, period: MONTH, thresholdsPercent: [] },
  mode: 'hard',
  onDeciderDown: 'closed',
};
/** Anchor days a few days and a week and a half ahead of today, so the two tenants' periods end days apart. */
const anchorIn = (days: number): number => new Date(Date.now() + days * DAY_MS).getUTCDate();
const tenants = [
  { tenant: uniqueTenant('cal-a'), key: '', period: { unit: 'month', anchorDay: anchorIn(3), timeZone: 'America/New_York' } as PeriodSpec },
  { tenant: uniqueTenant('cal-b'), key: '', period: { unit: 'month', anchorDay: anchorIn(10), timeZone: 'Asia/Tokyo' } as PeriodSpec },
];
const planId = `p-${uniqueTenant('cal')}`;
let api: ApiServer | undefined;

const settingsOf = (tenant: string, period: PeriodSpec): AccountSettings => ({
  tenant: parseTenantId(tenant),
  billingPeriod: period,
  price: PRICE,
});

beforeAll(async () => {
  await store.putPlan(
    { id: parsePlanId(planId), version: 1, limits: [QUOTA], billingPeriod: MONTH, maxCostPerOperation: 10_000 },
    Date.now(),
  );
  for (const entry of tenants) {
    entry.key = (await store.addKey({ tenant: entry.tenant, keyId: 'k1', planId, nowMs: Date.now() })).key;
    await putAccountSettings({ accounts, config: store, settings: settingsOf(entry.tenant, entry.period), nowMs: Date.now() });
  }
  api = await startApiServer({ scratch });
});

afterAll(async () => {
  await api?.stop();
  redis.disconnect();
  dynamo.destroy();
  rmSync(scratch, { recursive: true, force: true });
});

/** One request; a 503 (shed by admission control on a loaded machine, `Retry-After: 1`) is retried as a client would. */
async function send(key: string): Promise<Response> {
  const server = api as ApiServer;
  for (let attempt = 1; ; attempt += 1) {
    const reply = await fetch(`${server.baseUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: COST_7,
    });
    if (reply.status !== 503 || attempt === 10) return reply;
    await reply.text();
    await new Promise((resolveLater) => setTimeout(resolveLater, 1_000));
  }
}

/** Sends `count` concurrent requests; answers the monthly quota's reset (s) of each. */
async function resetsOf(key: string, count: number): Promise<number[]> {
  const replies = await Promise.all(Array.from({ length: count }, () => send(key)));
  return Promise.all(
    replies.map(async (reply) => {
      const body = await reply.text();
      expect(reply.status, body).toBe(200);
      const match = /"monthly";r=\d+;t=(\d+)/.exec(reply.headers.get('ratelimit') ?? '');
      if (match === null) throw new Error(`no monthly quota in RateLimit: ${reply.headers.get('ratelimit')}`);
      return Number(match[1]);
    }),
  );
}

/** Seconds from now to the end of `period`'s current period. */
const secondsToEnd = (period: PeriodSpec): number => (periodAt(period, Date.now()).endMs - Date.now()) / 1000;

describe('two tenants on one plan, each in its own calendar', () => {
  it('resets each quota at its own period end and counts each tenant in its own billing period', async () => {
    for (const { tenant, key, period } of tenants) {
      // when the tenant sends 8 concurrent requests
      const resets = await resetsOf(key, 8);
      // then its monthly quota resets at the end of its own period (not the plan's: the 1st, UTC)
      for (const reset of resets) expect(Math.abs(reset - secondsToEnd(period))).toBeLessThan(300);
      expect(Math.abs(resets[0]! - secondsToEnd(MONTH))).toBeGreaterThan(3_600);
      // and the admitted counter of its own billing period holds the 56 units (the audit and statements read this one)
      const start = periodAt(period, Date.now()).startMs;
      const counted = await redis.get(admittedKey(shardOf(parseTenantId(tenant), config.redis.shardCount), parseTenantId(tenant), start));
      expect(Number(counted)).toBe(56);
    }
    const [a, b] = await Promise.all(tenants.map(async ({ key }) => (await resetsOf(key, 1))[0]!));
    expect(Math.abs(a! - b!)).toBeGreaterThan(DAY_MS / 1000);
  });

  it('an account created while the API runs reaches it: the quota then resets at the account period end, not the plan', async () => {
    // given a tenant on the same plan without an account: the plan's periods (the 1st, UTC)
    const tenant = uniqueTenant('cal-c');
    const { key } = await store.addKey({ tenant, keyId: 'k1', planId, nowMs: Date.now() });
    const [before] = await resetsOf(key, 1);
    expect(Math.abs(before! - secondsToEnd(MONTH))).toBeLessThan(300);
    // when its account is created
    const period: PeriodSpec = { unit: 'month', anchorDay: anchorIn(20), timeZone: 'Europe/Paris' };
    await putAccountSettings({ accounts, config: store, settings: settingsOf(tenant, period), nowMs: Date.now() });
    // then the running API decides its requests in the account's calendar
    await waitFor('the API to decide in the account calendar', async () => {
      const [reset] = await resetsOf(key, 1);
      return Math.abs(reset! - secondsToEnd(period)) < 300;
    });
  });

  it('refuses an account whose billing unit differs from its plan, with the reason, and stores nothing', async () => {
    const entry = tenants[1]!;
    const error = await putAccountSettings({
      accounts,
      config: store,
      settings: settingsOf(entry.tenant, { unit: 'day', anchorDay: 1, timeZone: 'UTC' }),
      nowMs: Date.now(),
    }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).code).toBe('ACCOUNT_INVALID');
    expect((error as ValidationError).details).toEqual({
      problems: [
        `billingPeriod.unit is day but plan ${planId} (v1) bills by month`,
        `billingPeriod cannot change once the account exists (it is month, anchor day ${entry.period.anchorDay}, Asia/Tokyo): ` +
          'usage of the open period would be counted where no statement reads it',
      ],
    });
    expect((await accounts.get(parseTenantId(entry.tenant)))?.billingPeriod).toEqual(entry.period);
    // and a change of the anchor of an existing account is refused (its open period would go unbilled); its price may change
    const moved = await putAccountSettings({
      accounts,
      config: store,
      settings: settingsOf(entry.tenant, { ...entry.period, anchorDay: (entry.period.anchorDay % 28) + 1 }),
      nowMs: Date.now(),
    }).catch((caught: unknown) => caught);
    expect((moved as ValidationError).details).toEqual({
      problems: [
        `billingPeriod cannot change once the account exists (it is month, anchor day ${entry.period.anchorDay}, Asia/Tokyo): ` +
          'usage of the open period would be counted where no statement reads it',
      ],
    });
    // and a key of a daily plan for this monthly account is refused too
    const dailyPlan = `${planId}-daily`;
    await store.putPlan(
      {
        id: parsePlanId(dailyPlan),
        version: 1,
        limits: [QUOTA],
        billingPeriod: { unit: 'day', anchorDay: 1, timeZone: 'UTC' },
        maxCostPerOperation: 10_000,
      },
      Date.now(),
    );
    const keyError = await store
      .addKey({ tenant: entry.tenant, keyId: 'k2', planId: dailyPlan, nowMs: Date.now() })
      .catch((caught: unknown) => caught);
    expect((keyError as ValidationError).code).toBe('ACCOUNT_INVALID');
    expect((keyError as ValidationError).details).toEqual({
      problems: [`billingPeriod.unit is month but plan ${dailyPlan} (v1) bills by day`],
    });
    const repriced = { ...settingsOf(entry.tenant, entry.period), price: { ...PRICE, baseFeeMicros: 1_000 } };
    await putAccountSettings({ accounts, config: store, settings: repriced, nowMs: Date.now() });
    expect((await accounts.get(parseTenantId(entry.tenant)))?.price.baseFeeMicros).toBe(1_000);
  });
});
