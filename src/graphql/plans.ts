/**
 * Plans as the edge sees them: the limits that apply to a caller, the billing
 * period, and the per-operation cost maximum. The `PlanStore` port is read on
 * every request, so implementations keep a validated in-memory snapshot
 * (DESIGN §4: plans are pushed to every instance).
 */
import { z } from 'zod';
import {
  MAX_SUB_SHARDS,
  integerIn,
  limitsSchema,
  periodSpecSchema,
  schemaProblems,
  type LimitSpec,
  type PeriodSpec,
} from '../decider/index.js';
import { ValidationError, parsePlanId, type PlanId } from '../shared/index.js';
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

/** Port: the current plans. */
export interface PlanStore {
  get(planId: PlanId): Plan | undefined;
}

/**
 * Plans in memory.
 * @throws ValidationError `INVALID_INPUT` for a plan whose limits or maximum are invalid
 */
export class InMemoryPlanStore implements PlanStore {
  private readonly plans = new Map<string, Plan>();

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
}
