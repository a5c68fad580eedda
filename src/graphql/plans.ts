/**
 * Plans as the edge sees them: the limits that apply to a caller, the billing
 * period, and the per-operation cost maximum. The `PlanStore` port is read on
 * every request, so implementations keep a validated in-memory snapshot
 * (DESIGN §4: plans are pushed to every instance).
 *
 * The tenant's period: one source of truth, the account's billing period (unit, anchor day, zone). A
 * request is decided with `planForTenant`: the account's period is its billing period, and every period
 * quota of the plan keeps its unit but takes the account's anchor day and zone, so two tenants on one
 * plan reset on their own days, and the decider's admitted counters name the periods the account
 * workflow closes. A tenant without an account gets the plan's own periods (its defaults). An account
 * whose unit differs from its plans' billing unit is refused (`accountPlanProblems`).
 */
import { z } from 'zod';
import {
  MAX_SUB_SHARDS,
  integerIn,
  limitsSchema,
  periodSpecSchema,
  schemaProblems,
  limitsInTenantCalendar,
  type LimitSpec,
  type PeriodSpec,
} from '../decider/index.js';
import { ValidationError, parsePlanId, type PlanId, type TenantId } from '../shared/index.js';
import { CRITICALITIES, type Criticality } from './admission.js';

export interface Plan {
  id: PlanId;
  /** Version of the plan, recorded in every usage event. */
  version: number;
  limits: LimitSpec[];
  billingPeriod: PeriodSpec;
  /** Largest requested cost one operation may have; above it: 400 COST_EXCEEDS_MAXIMUM. */
  maxCostPerOperation: number;
  /**
   * Whale tenants: split this plan's limits over this many sub-shards (2..64), each on its own
   * logical shard (bounds in the README). @default 1 (not split)
   */
  subShards?: number;
  /**
   * How readily this plan's requests are shed when the instance is overloaded (`sheddable` first,
   * `critical` last; see `admission.ts`). @default 'default'
   */
  criticality?: Criticality;
}

const PLAN_PERIOD_UNIT = 'must be day or month in a plan (second periods are for tests and demos)';

const planIdSchema = z.unknown().transform((raw, ctx): PlanId => {
  try {
    return parsePlanId(raw);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'is not a valid id' });
    return z.NEVER;
  }
});

/**
 * A plan as data (stored in DynamoDB, sent by the admin API, written in code): the decider's
 * limit and period schemas, plus what only a plan has. A plan's periods are days or months.
 */
const planSchema = z.strictObject({
  id: planIdSchema,
  version: integerIn(1, Number.MAX_SAFE_INTEGER),
  limits: limitsSchema.superRefine((limits, ctx) => {
    limits.forEach((limit, index) => {
      if (limit.algorithm.kind === 'period-quota' && limit.algorithm.period.unit === 'second') {
        ctx.addIssue({ code: 'custom', path: [index, 'algorithm', 'period', 'unit'], message: PLAN_PERIOD_UNIT });
      }
    });
  }),
  billingPeriod: periodSpecSchema.superRefine((period, ctx) => {
    if (period.unit === 'second') ctx.addIssue({ code: 'custom', path: ['unit'], message: PLAN_PERIOD_UNIT });
  }),
  maxCostPerOperation: integerIn(1, Number.MAX_SAFE_INTEGER),
  subShards: integerIn(1, MAX_SUB_SHARDS).exactOptional(),
  criticality: z.enum(CRITICALITIES).exactOptional(),
});

/**
 * Parses and validates a plan from untrusted data, by the plan schema (which holds the
 * decider's limit schema: ids, integer ranges, exact-arithmetic bounds).
 * @throws ValidationError `INVALID_INPUT`: `invalid plan:` then every problem, one per line (also in `details.problems`)
 */
export function parsePlan(raw: unknown): Plan {
  const parsed = planSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = schemaProblems(parsed.error, 'plan');
    throw new ValidationError('INVALID_INPUT', `invalid plan:\n${problems.join('\n')}`, { details: { problems } });
  }
  return parsed.data;
}

/** Port: the current plans, and the billing periods of the tenants with an account. */
export interface PlanStore {
  get(planId: PlanId): Plan | undefined;
  /** The tenant's billing period (its account's), or undefined without an account (the plan's periods apply). */
  tenantPeriod?(tenant: TenantId): PeriodSpec | undefined;
}

const MAX_TENANT_PLANS_PER_PLAN = 10_000;
const tenantPlans = new WeakMap<Plan, Map<string, Plan>>();

const periodKeys = new WeakMap<PeriodSpec, string>();

/** A period's identity as a string, built once per period object (a request looks its tenant's up on the hot path). */
function periodKey(period: PeriodSpec): string {
  let key = periodKeys.get(period);
  if (key === undefined) {
    key = `${period.unit}|${period.lengthSeconds ?? 1}|${period.anchorDay}|${period.timeZone}`;
    periodKeys.set(period, key);
  }
  return key;
}

/**
 * The plan as it applies to a tenant whose billing period is `tenantPeriod` (see the file header): the
 * plan itself without one. The same object for the same plan and period on every call (the decider's
 * caches key off the limits array and the period object).
 */
export function planForTenant(plan: Plan, tenantPeriod: PeriodSpec | undefined): Plan {
  if (tenantPeriod === undefined) return plan;
  const key = periodKey(tenantPeriod);
  let byPeriod = tenantPlans.get(plan);
  const known = byPeriod?.get(key);
  if (known !== undefined) return known;
  const limits = limitsInTenantCalendar(plan.limits, tenantPeriod);
  const isSame = limits === plan.limits && periodKey(plan.billingPeriod) === key;
  const tenantPlan: Plan = isSame ? plan : { ...plan, limits, billingPeriod: { ...tenantPeriod } };
  if (byPeriod === undefined) tenantPlans.set(plan, (byPeriod = new Map<string, Plan>()));
  if (byPeriod.size >= MAX_TENANT_PLANS_PER_PLAN) byPeriod.clear();
  byPeriod.set(key, tenantPlan);
  return tenantPlan;
}

/** The plan of `planId` as it applies to `tenant` (`planForTenant`), or undefined when there is no such plan. */
export function tenantPlanOf(store: PlanStore, planId: PlanId, tenant: TenantId): Plan | undefined {
  const plan = store.get(planId);
  return plan === undefined ? undefined : planForTenant(plan, store.tenantPeriod?.(tenant));
}

/**
 * Why an account's billing period cannot go with the plans of its tenant's keys (empty when it can): the
 * plan says the unit of the billing period (month, day), the account its anchor day and zone; an account
 * of another unit would close periods the decider never counted in.
 */
export function accountPlanProblems(billingPeriod: PeriodSpec, plans: readonly Plan[]): string[] {
  const problems: string[] = [];
  for (const plan of plans) {
    if (plan.billingPeriod.unit !== billingPeriod.unit) {
      problems.push(
        `billingPeriod.unit is ${billingPeriod.unit} but plan ${plan.id} (v${plan.version}) bills by ${plan.billingPeriod.unit}`,
      );
    }
  }
  return problems;
}

/**
 * Plans in memory.
 * @throws ValidationError `INVALID_INPUT` for a plan whose limits or maximum are invalid
 */
export class InMemoryPlanStore implements PlanStore {
  private readonly plans = new Map<string, Plan>();
  private readonly periods = new Map<string, PeriodSpec>();

  constructor(plans: Plan[] = []) {
    for (const plan of plans) this.set(plan);
  }

  set(plan: Plan): void {
    parsePlan(plan);
    this.plans.set(plan.id, plan);
  }

  get(planId: PlanId): Plan | undefined {
    return this.plans.get(planId);
  }

  /** Sets (or, with undefined, removes) a tenant's billing period, as its account says. */
  setTenantPeriod(tenant: TenantId, period: PeriodSpec | undefined): void {
    if (period === undefined) this.periods.delete(tenant);
    else this.periods.set(tenant, period);
  }

  tenantPeriod(tenant: TenantId): PeriodSpec | undefined {
    return this.periods.get(tenant);
  }
}
