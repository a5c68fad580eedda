/**
 * The tenant's period is one source of truth (its account's billing period): two tenants on one plan
 * have their period quotas and admitted counters in their own calendars (anchor day, zone), across a DST
 * change and a month-end anchor; an account of another billing unit than its plans is refused.
 */
import { describe, expect, it } from 'vitest';
import { compileRequest } from '../../../src/decider/compile.js';
import { admittedKey, bucketKeyTail, shardOf } from '../../../src/decider/keys.js';
import { periodAt, type PeriodSpec } from '../../../src/decider/model/period.js';
import type { DecideInput } from '../../../src/decider/ports.js';
import { InMemoryPlanStore, accountPlanProblems, planForTenant, tenantPlanOf, type Plan } from '../../../src/graphql/plans.js';
import { parseEventId, parseKeyId, parseLimitId, parsePlanId, parseTenantId } from '../../../src/shared/index.js';

const iso = (ms: number): string => new Date(ms).toISOString();
const at = (text: string): number => Date.parse(text);
const HOUR = 3_600_000;

/** One plan for everyone: a monthly and a daily quota, billed monthly; its own calendar is UTC, the 1st. */
const PLAN: Plan = {
  id: parsePlanId('shared'),
  version: 3,
  maxCostPerOperation: 100,
  billingPeriod: { unit: 'month', anchorDay: 1, timeZone: 'UTC' },
  limits: [
    {
      id: parseLimitId('monthly'),
      scope: 'tenant',
      algorithm: { kind: 'period-quota', limit: 1_000, period: { unit: 'month', anchorDay: 1, timeZone: 'UTC' }, thresholdsPercent: [80] },
      mode: 'hard',
      onDeciderDown: 'closed',
    },
    {
      id: parseLimitId('daily'),
      scope: 'tenant',
      algorithm: { kind: 'period-quota', limit: 100, period: { unit: 'day', anchorDay: 1, timeZone: 'UTC' }, thresholdsPercent: [] },
      mode: 'hard',
      onDeciderDown: 'closed',
    },
    {
      id: parseLimitId('burst'),
      scope: 'apiKey',
      algorithm: { kind: 'token-bucket', capacity: 10, refillAmount: 1, refillPeriodMs: 1_000 },
      mode: 'hard',
      onDeciderDown: 'open',
    },
  ],
};

const A = parseTenantId('tenant-a');
const B = parseTenantId('tenant-b');
const NEW_YORK_5TH: PeriodSpec = { unit: 'month', anchorDay: 5, timeZone: 'America/New_York' };
const PARIS_20TH: PeriodSpec = { unit: 'month', anchorDay: 20, timeZone: 'Europe/Paris' };
const SHARDS = 16;

function input(tenant: typeof A, plan: Plan): DecideInput {
  return {
    tenant,
    keyId: parseKeyId('k1'),
    requestId: parseEventId('r-1'),
    operation: 'Q',
    cost: 1,
    limits: plan.limits,
    billingPeriod: plan.billingPeriod,
    policyVersion: plan.version,
    isDeferrable: false,
  };
}

/** The period start the decider names the monthly quota's and the billing counter's keys with at `nowMs`. */
function named(tenant: typeof A, plan: Plan, nowMs: number): { quota: string; admitted: string; daily: string } {
  const compiled = compileRequest(input(tenant, plan), { shardCount: SHARDS, localNowMs: nowMs });
  const quotaKey = (id: string): string => {
    const key = compiled.keys.find((candidate) => candidate.includes(`:b:v1:${id}:p:`));
    if (key === undefined) throw new Error(`no ${id} key`);
    return key;
  };
  const shard = shardOf(tenant, SHARDS);
  const current = (spec: PeriodSpec): number => periodAt(spec, nowMs - 60_000).startMs;
  // the keys hold the period start: which period start does the decider use?
  const monthlyStart = [PLAN.billingPeriod, NEW_YORK_5TH, PARIS_20TH, plan.billingPeriod]
    .map(current)
    .find((start) => quotaKey('monthly').endsWith(bucketKeyTail(parseLimitId('monthly'), start)));
  const admittedStart = [PLAN.billingPeriod, NEW_YORK_5TH, PARIS_20TH, plan.billingPeriod]
    .map(current)
    .find((start) => compiled.keys.includes(admittedKey(shard, tenant, start)));
  const dayStarts = ['UTC', 'America/New_York', 'Europe/Paris'].map((timeZone) => current({ unit: 'day', anchorDay: 1, timeZone }));
  const dailyStart = dayStarts.find((start) => quotaKey('daily').endsWith(bucketKeyTail(parseLimitId('daily'), start)));
  return {
    quota: monthlyStart === undefined ? 'none' : iso(monthlyStart),
    admitted: admittedStart === undefined ? 'none' : iso(admittedStart),
    daily: dailyStart === undefined ? 'none' : iso(dailyStart),
  };
}

describe('the tenant calendar on one shared plan', () => {
  const store = new InMemoryPlanStore([PLAN]);
  store.setTenantPeriod(A, NEW_YORK_5TH);
  store.setTenantPeriod(B, PARIS_20TH);
  const planOf = (tenant: typeof A): Plan => {
    const plan = tenantPlanOf(store, PLAN.id, tenant);
    if (plan === undefined) throw new Error('no plan');
    return plan;
  };

  it('resets each tenant quota and billing counter on its own anchor day, in its own zone', () => {
    // 2026-03-05 00:00 in New York is 05:00Z (EST); two hours before and after it
    expect(named(A, planOf(A), at('2026-03-05T03:00:00Z'))).toEqual({
      quota: '2026-02-05T05:00:00.000Z',
      admitted: '2026-02-05T05:00:00.000Z',
      daily: '2026-03-04T05:00:00.000Z',
    });
    expect(named(A, planOf(A), at('2026-03-05T07:00:00Z'))).toMatchObject({
      quota: '2026-03-05T05:00:00.000Z',
      admitted: '2026-03-05T05:00:00.000Z',
    });
    // B, on the same plan, does not reset then: its month starts on the 20th in Paris
    expect(named(B, planOf(B), at('2026-03-05T07:00:00Z'))).toEqual({
      quota: '2026-02-19T23:00:00.000Z',
      admitted: '2026-02-19T23:00:00.000Z',
      daily: '2026-03-04T23:00:00.000Z',
    });
    expect(named(B, planOf(B), at('2026-03-20T01:00:00Z'))).toMatchObject({ quota: '2026-03-19T23:00:00.000Z' });
  });

  it('a tenant without an account keeps the plan periods (its defaults)', () => {
    const other = parseTenantId('tenant-c');
    expect(tenantPlanOf(store, PLAN.id, other)).toBe(PLAN);
    expect(named(other, PLAN, at('2026-03-05T07:00:00Z'))).toEqual({
      quota: '2026-03-01T00:00:00.000Z',
      admitted: '2026-03-01T00:00:00.000Z',
      daily: '2026-03-05T00:00:00.000Z',
    });
  });

  it('keeps each quota unit and the other limits, and gives the same objects on every call (decider caches)', () => {
    const plan = planOf(A);
    expect(plan).toBe(planOf(A));
    expect(plan.limits).toBe(planForTenant(PLAN, { ...NEW_YORK_5TH }).limits);
    expect(plan.billingPeriod).toEqual(NEW_YORK_5TH);
    expect(plan.limits.map((limit) => (limit.algorithm.kind === 'period-quota' ? limit.algorithm.period : limit.algorithm.kind))).toEqual([
      NEW_YORK_5TH,
      { unit: 'day', anchorDay: 5, timeZone: 'America/New_York' },
      'token-bucket',
    ]);
    expect(plan.limits[2]).toBe(PLAN.limits[2]);
  });

  it('follows New York across both DST changes', () => {
    const march = planOf(A);
    // the month holding 2026-03-08 (DST starts) begins at EST midnight and ends at EDT midnight
    expect(named(A, march, at('2026-03-20T12:00:00Z')).quota).toBe('2026-03-05T05:00:00.000Z');
    const spec = march.billingPeriod;
    expect(iso(periodAt(spec, at('2026-03-20T12:00:00Z')).endMs)).toBe('2026-04-05T04:00:00.000Z');
    // November: EDT midnight to EST midnight
    const november = periodAt(spec, at('2026-11-20T12:00:00Z'));
    expect([iso(november.startMs), iso(november.endMs)]).toEqual(['2026-11-05T05:00:00.000Z', '2026-12-05T05:00:00.000Z']);
    const october = periodAt(spec, at('2026-10-20T12:00:00Z'));
    expect([iso(october.startMs), iso(october.endMs)]).toEqual(['2026-10-05T04:00:00.000Z', '2026-11-05T05:00:00.000Z']);
    // the daily quota in the tenant zone: the day DST starts lasts 23 hours, the day it ends 25
    const daily = march.limits[1]?.algorithm;
    if (daily?.kind !== 'period-quota') throw new Error('no daily quota');
    const short = periodAt(daily.period, at('2026-03-08T12:00:00Z'));
    const long = periodAt(daily.period, at('2026-11-01T12:00:00Z'));
    expect([(short.endMs - short.startMs) / HOUR, (long.endMs - long.startMs) / HOUR]).toEqual([23, 25]);
    expect(iso(short.startMs)).toBe('2026-03-08T05:00:00.000Z');
  });

  it('an anchor on the 31st resets on February 28th, or 29th in a leap year', () => {
    const tenant = parseTenantId('tenant-31');
    store.setTenantPeriod(tenant, { unit: 'month', anchorDay: 31, timeZone: 'UTC' });
    const plan = tenantPlanOf(store, PLAN.id, tenant);
    if (plan === undefined) throw new Error('no plan');
    expect(named(tenant, plan, at('2027-02-27T12:00:00Z')).quota).toBe('2027-01-31T00:00:00.000Z');
    expect(named(tenant, plan, at('2027-02-28T02:00:00Z')).quota).toBe('2027-02-28T00:00:00.000Z');
    expect(named(tenant, plan, at('2027-03-30T12:00:00Z')).quota).toBe('2027-02-28T00:00:00.000Z');
    expect(named(tenant, plan, at('2027-03-31T02:00:00Z')).quota).toBe('2027-03-31T00:00:00.000Z');
    expect(named(tenant, plan, at('2028-02-28T12:00:00Z')).quota).toBe('2028-01-31T00:00:00.000Z');
    expect(named(tenant, plan, at('2028-02-29T02:00:00Z')).admitted).toBe('2028-02-29T00:00:00.000Z');
  });
});

describe('accountPlanProblems', () => {
  it('accepts any anchor and zone with the plan unit, and names each plan of another unit', () => {
    expect(accountPlanProblems(PARIS_20TH, [PLAN])).toEqual([]);
    const daily: Plan = { ...PLAN, id: parsePlanId('daily'), version: 2, billingPeriod: { unit: 'day', anchorDay: 1, timeZone: 'UTC' } };
    expect(accountPlanProblems(PARIS_20TH, [PLAN, daily])).toEqual(['billingPeriod.unit is month but plan daily (v2) bills by day']);
    expect(accountPlanProblems({ unit: 'second', lengthSeconds: 6, anchorDay: 1, timeZone: 'UTC' }, [PLAN])).toEqual([
      'billingPeriod.unit is second but plan shared (v3) bills by month',
    ]);
  });
});
