/**
 * Plans as the edge sees them: the limits that apply to a caller, the billing
 * period, and the per-operation cost maximum. The `PlanStore` port is read on
 * every request, so implementations keep a validated in-memory snapshot
 * (DESIGN §4: plans are pushed to every instance).
 */
import { z } from 'zod';
import { MAX_SUB_SHARDS, isValidTimeZone, validateLimits, type LimitSpec, type PeriodSpec } from '../decider/index.js';
import { ValidationError, parseLimitId, parsePlanId, type PlanId } from '../shared/index.js';

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
}

const safeInt = (min: number, max = Number.MAX_SAFE_INTEGER) => z.number().int().min(min).max(max);
const periodSchema = z.strictObject({
  unit: z.enum(['day', 'month']),
  anchorDay: safeInt(1, 31),
  timeZone: z.string().max(64).refine(isValidTimeZone, 'not an IANA time zone'),
});
const algorithmSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('token-bucket'), capacity: safeInt(1), refillAmount: safeInt(1), refillPeriodMs: safeInt(1) }),
  z.strictObject({ kind: z.literal('fixed-window'), limit: safeInt(1), windowMs: safeInt(1) }),
  z.strictObject({ kind: z.literal('sliding-window'), limit: safeInt(1), windowMs: safeInt(1) }),
  z.strictObject({ kind: z.literal('period-quota'), limit: safeInt(1), period: periodSchema, thresholdsPercent: z.array(safeInt(1, 1000)).max(8) }),
  z.strictObject({ kind: z.literal('concurrency'), slots: safeInt(1), leaseTtlMs: safeInt(1) }),
]);
const limitSchema = z.strictObject({
  id: z.string().max(64),
  scope: z.enum(['tenant', 'apiKey', 'ip']),
  algorithm: algorithmSchema,
  mode: z.enum(['hard', 'soft', 'defer', 'shadow']),
  onDeciderDown: z.enum(['open', 'closed', 'local']),
});
/** The one schema of a plan as data (stored in DynamoDB, sent by the admin API, written in code). */
const planSchema = z.strictObject({
  id: z.string().max(64),
  version: safeInt(1),
  limits: z.array(limitSchema).max(64),
  billingPeriod: periodSchema,
  maxCostPerOperation: safeInt(1),
  subShards: safeInt(1, MAX_SUB_SHARDS).optional(),
});

/**
 * Parses and validates a plan from untrusted data (shape by the plan schema,
 * then the limits' own rules: ids, integer ranges, exact-arithmetic bounds).
 * @throws ValidationError `INVALID_INPUT` listing every problem
 */
export function parsePlan(raw: unknown): Plan {
  const parsed = planSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(plan)'}: ${issue.message}`);
    throw new ValidationError('INVALID_INPUT', `invalid plan:\n${problems.join('\n')}`, { details: { problems } });
  }
  const data = parsed.data;
  let id: PlanId;
  try {
    id = parsePlanId(data.id);
  } catch {
    throw new ValidationError('INVALID_INPUT', `invalid plan: id ${JSON.stringify(data.id)} is not a valid id`);
  }
  const limits: LimitSpec[] = [];
  for (const [index, limit] of data.limits.entries()) {
    try {
      limits.push({ ...limit, id: parseLimitId(limit.id) });
    } catch {
      throw new ValidationError('INVALID_INPUT', `invalid plan ${id}: limits[${index}].id is not a valid id`);
    }
  }
  validateLimits(limits);
  return {
    id,
    version: data.version,
    limits,
    billingPeriod: data.billingPeriod,
    maxCostPerOperation: data.maxCostPerOperation,
    ...(data.subShards === undefined ? {} : { subShards: data.subShards }),
  };
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
