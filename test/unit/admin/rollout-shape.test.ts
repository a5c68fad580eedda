import { describe, expect, it } from 'vitest';
import { rolloutPlan, rolloutShape } from '../../../src/graphql/config/rollouts.js';
import { parsePlan } from '../../../src/graphql/plans.js';
import { isRolloutShadow, reservedLimitIdProblems, tenantVisiblePlan, wouldAdmit } from '../../../src/graphql/usage/activity.js';
import type { LimitState } from '../../../src/decider/index.js';
import { parseLimitId } from '../../../src/shared/index.js';

const MONTH = { unit: 'month', anchorDay: 1, timeZone: 'UTC' };
const limit = (id: string, capacity: number, mode = 'hard'): unknown => ({
  id,
  scope: 'tenant',
  algorithm: { kind: 'token-bucket', capacity, refillAmount: 1, refillPeriodMs: 1_000 },
  mode,
  onDeciderDown: 'open',
});
const plan = (version: number, limits: unknown[]): ReturnType<typeof parsePlan> =>
  parsePlan({ id: 'p', version, billingPeriod: MONTH, maxCostPerOperation: 100, limits });

const state = (id: string, mode: LimitState['mode'], isExceeded: boolean): LimitState => ({
  id: parseLimitId(id),
  kind: 'token-bucket',
  mode,
  remaining: 0,
  resetMs: 0,
  isExceeded,
  hasTaken: false,
  overage: 0,
});

describe('rollout shape', () => {
  const enforced = plan(1, [limit('kept', 10), limit('changed', 10), limit('gone', 10)]);
  const next = plan(2, [limit('kept', 10), limit('changed', 5, 'soft'), limit('added', 3)]);
  const shape = rolloutShape(enforced, next);

  it('names the shadow copies with their new modes, the kept and the removed limits', () => {
    expect([...shape.shadows]).toEqual([
      ['changed-sv2', { limitId: 'changed', mode: 'soft' }],
      ['added-sv2', { limitId: 'added', mode: 'hard' }],
    ]);
    expect([...shape.unchanged]).toEqual(['kept']);
    expect([...shape.removed]).toEqual(['gone']);
  });

  it('judges a refused request admitted by the new version only when no kept limit and no refusing copy is exceeded', () => {
    const refusedByGone = [state('kept', 'hard', false), state('changed', 'hard', true), state('gone', 'hard', true)];
    // the changed limit's enforced copy and the removed limit refused; its new copy is soft: admitted
    expect(wouldAdmit(shape, [...refusedByGone, state('changed-sv2', 'shadow', true), state('added-sv2', 'shadow', false)])).toBe(true);
    // the added limit would refuse
    expect(wouldAdmit(shape, [...refusedByGone, state('changed-sv2', 'shadow', false), state('added-sv2', 'shadow', true)])).toBe(false);
    // a kept limit refused
    expect(wouldAdmit(shape, [state('kept', 'hard', true), state('gone', 'hard', true)])).toBe(false);
  });

  it('hides the shadow copies from tenants (one filtered plan object per served plan), and reserves their suffix', () => {
    const served = rolloutPlan(enforced, next);
    expect(served.limits.filter(isRolloutShadow).map((spec) => spec.id)).toEqual(['changed-sv2', 'added-sv2']);
    const visible = tenantVisiblePlan(served);
    expect(visible.limits.map((spec) => spec.id)).toEqual(['kept', 'changed', 'gone']);
    expect(tenantVisiblePlan(served)).toBe(visible);
    expect(tenantVisiblePlan(enforced)).toBe(enforced);
    // a plan's own shadow-mode limit stays visible
    expect(isRolloutShadow({ id: 'audit-only', mode: 'shadow' })).toBe(false);
    expect(reservedLimitIdProblems([{ id: 'ok' }, { id: 'x-sv12' }])).toEqual([
      'plan.limits.1.id: x-sv12 ends in -sv<digits>, which names the shadow copies of rollouts',
    ]);
  });
});
