/**
 * The demo's plans and keys, for `npm start` and tests: three plans (a
 * starter plan with a burst bucket, a monthly quota with warning thresholds
 * and a daily `defer` limit for heavy work; a pro plan whose monthly quota is
 * soft; an anonymous per-IP plan that falls back to a local backstop; shed
 * under overload anonymous first, pro last), and one key per demo tenant. Keys are generated at start and shown once.
 */
import type { LimitSpec, PeriodSpec } from '../../decider/index.js';
import type { AccountSettings } from '../../billing/index.js';
import { ConflictError, parseLimitId, parsePlanId, parseTenantId } from '../../shared/index.js';
import type { DynamoConfigStore } from '../config/dynamo-config-store.js';
import { InMemoryDeferrer } from '../../jobs/index.js';
import { hashApiKey } from '../identity/api-key.js';
import { InMemoryKeyStore } from '../identity/key-store.js';
import { InMemoryPlanStore, type Plan } from '../plans.js';
import { DemoStore } from './data.js';

const MONTH: PeriodSpec = { unit: 'month', anchorDay: 1, timeZone: 'UTC' };
const DAY: PeriodSpec = { unit: 'day', anchorDay: 1, timeZone: 'UTC' };

const limit = (spec: Omit<LimitSpec, 'id'> & { id: string }): LimitSpec => ({ ...spec, id: parseLimitId(spec.id) });

/** The anonymous tenant's id and plan (used when `API_ANONYMOUS=ip-plan`). */
export const DEMO_ANONYMOUS = { tenant: 'anonymous', planId: 'anonymous' } as const;

export const DEMO_PLANS: Plan[] = [
  {
    id: parsePlanId('starter'),
    version: 2,
    criticality: 'default',
    billingPeriod: MONTH,
    maxCostPerOperation: 5_000,
    limits: [
      limit({
        id: 'burst',
        scope: 'apiKey',
        algorithm: { kind: 'token-bucket', capacity: 2_000, refillAmount: 200, refillPeriodMs: 1_000 },
        mode: 'hard',
        onDeciderDown: 'open',
      }),
      limit({
        id: 'month',
        scope: 'tenant',
        algorithm: { kind: 'period-quota', limit: 5_000_000, period: MONTH, thresholdsPercent: [80, 90, 100] },
        mode: 'hard',
        onDeciderDown: 'open',
      }),
      limit({
        id: 'heavy-day',
        scope: 'tenant',
        algorithm: { kind: 'period-quota', limit: 200_000, period: DAY, thresholdsPercent: [] },
        mode: 'defer',
        onDeciderDown: 'open',
      }),
    ],
  },
  {
    id: parsePlanId('pro'),
    version: 2,
    criticality: 'critical',
    billingPeriod: MONTH,
    maxCostPerOperation: 50_000,
    limits: [
      limit({
        id: 'burst',
        scope: 'apiKey',
        algorithm: { kind: 'token-bucket', capacity: 20_000, refillAmount: 2_000, refillPeriodMs: 1_000 },
        mode: 'hard',
        onDeciderDown: 'local',
      }),
      limit({
        id: 'month',
        scope: 'tenant',
        algorithm: { kind: 'period-quota', limit: 50_000_000, period: MONTH, thresholdsPercent: [80, 100] },
        mode: 'soft',
        onDeciderDown: 'open',
      }),
    ],
  },
  {
    id: parsePlanId(DEMO_ANONYMOUS.planId),
    version: 2,
    criticality: 'sheddable',
    billingPeriod: MONTH,
    maxCostPerOperation: 500,
    limits: [
      limit({
        id: 'ip-burst',
        scope: 'ip',
        algorithm: { kind: 'token-bucket', capacity: 200, refillAmount: 20, refillPeriodMs: 1_000 },
        mode: 'hard',
        onDeciderDown: 'local',
      }),
    ],
  },
];

export interface DemoKey {
  tenant: string;
  keyId: string;
  planId: string;
  /** The plain key: shown once, never logged. */
  key: string;
}

export interface DemoSetup {
  store: DemoStore;
  keyStore: InMemoryKeyStore;
  plans: InMemoryPlanStore;
  /** In-memory and non-durable: records deferred jobs, runs nothing (for tests; the server uses TemporalDeferrer). */
  deferrer: InMemoryDeferrer;
  keys: DemoKey[];
}

/** Fresh demo data, plans and (unless `hasKeys` is false) one key per demo tenant. */
export function createDemoSetup(options: { hasKeys?: boolean } = {}): DemoSetup {
  const keyStore = new InMemoryKeyStore();
  const keys: DemoKey[] = [];
  if (options.hasKeys !== false) {
    for (const { tenant, planId } of DEMO_TENANTS) {
      const { key } = keyStore.add({ tenant, keyId: 'default', planId });
      keys.push({ tenant, keyId: 'default', planId, key });
    }
  }
  return { store: new DemoStore(), keyStore, plans: new InMemoryPlanStore(DEMO_PLANS), deferrer: new InMemoryDeferrer(), keys };
}

/** The demo tenants and their plans. */
export const DEMO_TENANTS = [
  { tenant: 'acme', planId: 'starter' },
  { tenant: 'globex', planId: 'pro' },
] as const;

/**
 * Stores the demo plans (a stored plan of the same or a later version is kept)
 * and one usable key per demo tenant in the config table: a key from
 * `previous` that is still stored and not revoked is kept, otherwise a new one
 * is created. Returns the keys to show (once, in a file only the user reads).
 * @throws DependencyError when DynamoDB fails
 */
export async function seedDemoConfig(store: DynamoConfigStore, previous: readonly DemoKey[], nowMs: number): Promise<DemoKey[]> {
  for (const plan of DEMO_PLANS) {
    try {
      await store.putPlan(plan, nowMs);
    } catch (error) {
      if (!(error instanceof ConflictError)) throw error;
    }
  }
  const keys: DemoKey[] = [];
  for (const { tenant, planId } of DEMO_TENANTS) {
    const known = previous.find((key) => key.tenant === tenant && key.planId === planId);
    if (known !== undefined) {
      const record = await store.findKeyByHash(hashApiKey(known.key));
      if (record !== undefined && !record.isRevoked && record.tenant === tenant && record.planId === planId) {
        keys.push(known);
        continue;
      }
    }
    const keyId = `demo-${nowMs.toString(36)}`;
    const { key } = await store.addKey({ tenant, keyId, planId, nowMs });
    keys.push({ tenant, keyId, planId, key });
  }
  return keys;
}

/**
 * Account settings of the demo tenants (written to the config table by the API at start): the
 * plans' billing period, a price in micro-EUR, no webhook (warnings are recorded as `skipped`;
 * set one with `DynamoAccountStore.put` to receive them).
 */
export const DEMO_ACCOUNTS: AccountSettings[] = [
  {
    tenant: parseTenantId('acme'),
    billingPeriod: MONTH,
    price: {
      currency: 'EUR',
      baseFeeMicros: 29_000_000,
      includedUnits: 1_000_000,
      tiers: [{ upToUnits: 2_000_000, unitPriceMicros: 20 }, { unitPriceMicros: 10 }],
    },
  },
  {
    tenant: parseTenantId('globex'),
    billingPeriod: MONTH,
    price: { currency: 'EUR', baseFeeMicros: 499_000_000, includedUnits: 40_000_000, tiers: [{ unitPriceMicros: 8 }] },
  },
];
