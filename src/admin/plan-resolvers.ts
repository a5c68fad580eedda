/** The admin API's plan fields (list, versions, diff against the stored version, apply with every problem and its path) and the audit. */
import { periodAt } from '../decider/index.js';
import { NotFoundError, ValidationError, parseTenantId } from '../shared/index.js';
import { diffPlans } from './plan-diff.js';
import type { AdminPlanStore, PlanRecord } from './ports.js';
import { changed, run, type AdminContext, type AdminDeps } from './support.js';

type Args = Record<string, unknown>;

const planOut = (plan: PlanRecord): Record<string, unknown> => ({
  ...plan,
  appliedAt: plan.appliedAtMs === null ? null : new Date(plan.appliedAtMs).toISOString(),
});

/** The audit of the tenant's period holding `at` (its account's calendar). @throws ValidationError, NotFoundError */
async function auditOf(deps: AdminDeps, tenant: string, at: unknown): Promise<Record<string, unknown>> {
  const atMs = typeof at === 'string' ? Date.parse(at) : deps.clock.nowMs();
  if (Number.isNaN(atMs)) throw new ValidationError('INVALID_INPUT', 'at must be an ISO-8601 instant');
  const account = await deps.corrections.accounts.get(parseTenantId(tenant));
  if (account === undefined) throw new NotFoundError(`tenant ${tenant} has no account (its billing period decides what to audit)`);
  const periodStartMs = periodAt(account.billingPeriod, atMs).startMs;
  const outcome = await deps.auditor.auditTenantPeriod({ tenant, periodStartMs });
  if (outcome.kind === 'unsettled') return { tenant, periodStart: outcome.periodStart, status: 'unsettled' };
  return { ...outcome.report, status: 'audited' };
}

/** The plan text of an argument (JSON). @throws ValidationError */
function planJson(raw: unknown): unknown {
  try {
    return JSON.parse(String(raw));
  } catch {
    throw new ValidationError('INVALID_INPUT', 'invalid plan:\nplan: not JSON', { details: { problems: ['plan: not JSON'] } });
  }
}

export function planResolvers(deps: AdminDeps & { plans: AdminPlanStore }): {
  Query: Record<string, unknown>;
  Mutation: Record<string, unknown>;
} {
  const { plans, clock } = deps;
  return {
    Query: {
      audit: (_parent: unknown, args: Args) => run(async () => auditOf(deps, String(args['tenant']), args['at'])),
      accountTenants: () => run(() => deps.accountTenants()),
      plans: () => run(async () => (await plans.listPlans()).map(planOut)),
      planVersions: (_parent: unknown, args: Args) => run(async () => (await plans.planVersions(String(args['id']))).map(planOut)),
      planDiff: (_parent: unknown, args: Args) =>
        run(async () => {
          const next = plans.checkPlan(planJson(args['plan']));
          const stored = await plans.getPlan(next.id);
          const before = stored === undefined || stored.body === '' ? undefined : (JSON.parse(stored.body) as unknown);
          return { id: next.id, storedVersion: stored?.version ?? null, newVersion: next.version, changes: diffPlans(before, next.plan) };
        }),
    },
    Mutation: {
      applyPlan: (_parent: unknown, args: Args, { actor }: AdminContext) =>
        run(async () => {
          const raw = planJson(args['plan']);
          const id = plans.checkPlan(raw).id;
          const target = `plan/${id}`;
          const result = await plans.applyPlan({
            raw,
            nowMs: clock.nowMs(),
            audit: { tokenId: actor.tokenId, action: 'plan.apply', target },
          });
          await changed(deps, { version: result.version, actor, action: 'plan.apply', target });
          return planOut(result.plan);
        }),
    },
  };
}
