/**
 * Plans as the edge sees them: the limits that apply to a caller, the billing
 * period, and the per-operation cost maximum. The `PlanStore` port is read on
 * every request, so implementations keep a validated in-memory snapshot
 * (DESIGN §4: plans are pushed to every instance).
 */
import { MAX_SUB_SHARDS, validateLimits, type LimitSpec, type PeriodSpec } from '../decider/index.js';
import { ValidationError, parsePlanId, type PlanId } from '../shared/index.js';

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
    parsePlanId(plan.id);
    validateLimits(plan.limits);
    if (!Number.isSafeInteger(plan.maxCostPerOperation) || plan.maxCostPerOperation < 1) {
      throw new ValidationError('INVALID_INPUT', `plan ${plan.id}: maxCostPerOperation must be a positive integer`);
    }
    if (plan.subShards !== undefined && (!Number.isInteger(plan.subShards) || plan.subShards < 1 || plan.subShards > MAX_SUB_SHARDS)) {
      throw new ValidationError('INVALID_INPUT', `plan ${plan.id}: subShards must be an integer in 1..${MAX_SUB_SHARDS}`);
    }
    this.plans.set(plan.id, plan);
  }

  get(planId: PlanId): Plan | undefined {
    return this.plans.get(planId);
  }
}
