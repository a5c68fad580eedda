/** The admin API's plan rollouts: start (shadow limits beside the enforced version), status with would-deny counts, promote, abort. */
import { ValidationError } from '../shared/index.js';
import type { PlanRecord, RolloutView } from './ports.js';
import { changed, run, type AdminContext, type AdminDeps } from './support.js';

type Args = Record<string, unknown>;

const iso = (ms: number): string => new Date(ms).toISOString();

const rolloutOut = (rollout: RolloutView): Record<string, unknown> => ({
  plan: rollout.planId,
  fromVersion: rollout.fromVersion,
  toVersion: rollout.toVersion,
  status: rollout.status,
  startedAt: iso(rollout.startedAtMs),
  endsAt: iso(rollout.endsAtMs),
  endedAt: rollout.endedAtMs === null ? null : iso(rollout.endedAtMs),
  limits: rollout.limits.map((limit) => ({
    limit: limit.limitId,
    shadowId: limit.shadowId,
    wouldDeny: limit.wouldDeny,
    hours: limit.hours.map((hour) => ({ hour: iso(hour.hourStartMs), wouldDeny: hour.wouldDeny })),
  })),
  wouldAdmit: rollout.wouldAdmit,
  removedLimits: rollout.removed.map((limit) => ({ limit: limit.limitId, wouldAdmit: limit.wouldAdmit })),
});

const planOut = (plan: PlanRecord): Record<string, unknown> => ({
  ...plan,
  appliedAt: plan.appliedAtMs === null ? null : iso(plan.appliedAtMs),
});

/** The plan text of an argument (JSON). @throws ValidationError */
function planJson(raw: unknown): unknown {
  try {
    return JSON.parse(String(raw));
  } catch {
    throw new ValidationError('INVALID_INPUT', 'invalid plan:\nplan: not JSON', { details: { problems: ['plan: not JSON'] } });
  }
}

export function rolloutResolvers(deps: AdminDeps): { Query: Record<string, unknown>; Mutation: Record<string, unknown> } {
  const { rollouts, clock } = deps;
  return {
    Query: {
      rollout: (_parent: unknown, args: Args) =>
        run(async () => {
          const rollout = await rollouts.get(String(args['plan']), clock.nowMs());
          return rollout === undefined ? null : rolloutOut(rollout);
        }),
      servedPlan: (_parent: unknown, args: Args) => {
        const plan = deps.servedPlan?.(String(args['id']));
        if (plan === undefined) return null;
        const limits = plan.limits.map(({ id, mode }) => ({ id, mode }));
        return { id: plan.id, version: plan.version, limits, rolloutVersion: plan.rolloutVersion };
      },
    },
    Mutation: {
      startRollout: (_parent: unknown, args: Args, { actor }: AdminContext) =>
        run(async () => {
          const raw = planJson(args['plan']);
          const id = deps.plans.checkPlan(raw).id;
          const target = `plan/${id}`;
          const forMs = Number(args['forSeconds']) * 1_000;
          const result = await rollouts.start({
            raw,
            forMs,
            nowMs: clock.nowMs(),
            audit: { tokenId: actor.tokenId, action: 'plan.rollout.start', target },
          });
          await changed(deps, { version: result.version, actor, action: 'plan.rollout.start', target });
          return rolloutOut(result.rollout);
        }),
      promoteRollout: (_parent: unknown, args: Args, { actor }: AdminContext) =>
        run(async () => {
          const target = `plan/${String(args['plan'])}`;
          const audit = { tokenId: actor.tokenId, action: 'plan.rollout.promote', target };
          const result = await rollouts.promote({ planId: String(args['plan']), nowMs: clock.nowMs(), audit });
          await changed(deps, { version: result.version, actor, action: 'plan.rollout.promote', target });
          return planOut(result.plan);
        }),
      abortRollout: (_parent: unknown, args: Args, { actor }: AdminContext) =>
        run(async () => {
          const target = `plan/${String(args['plan'])}`;
          const audit = { tokenId: actor.tokenId, action: 'plan.rollout.abort', target };
          const result = await rollouts.abort({ planId: String(args['plan']), nowMs: clock.nowMs(), audit });
          await changed(deps, { version: result.version, actor, action: 'plan.rollout.abort', target });
          return rolloutOut(result.rollout);
        }),
    },
  };
}
