import { describe, expect, it } from 'vitest';
import { diffPlans } from '../../../src/admin/index.js';

const burst = { id: 'burst', mode: 'hard', algorithm: { kind: 'token-bucket', capacity: 100 } };
const day = { id: 'day', mode: 'hard', algorithm: { kind: 'period-quota', limit: 1000 } };
const plan = { id: 'starter', version: 1, maxCostPerOperation: 50, limits: [burst, day] };

describe('diffPlans', () => {
  it('names each changed field by path, limits by id whatever their order; the version is not a change', () => {
    const next = {
      ...plan,
      version: 2,
      maxCostPerOperation: 60,
      limits: [{ ...day }, { ...burst, mode: 'shadow', algorithm: { ...burst.algorithm, capacity: 50 } }],
    };
    expect(diffPlans(plan, next)).toEqual([
      { path: 'limits[burst].algorithm.capacity', before: '100', after: '50' },
      { path: 'limits[burst].mode', before: '"hard"', after: '"shadow"' },
      { path: 'maxCostPerOperation', before: '50', after: '60' },
    ]);
  });

  it('lists added and removed limits whole, and a plan with nothing stored as one change', () => {
    const week = { id: 'week', mode: 'soft', algorithm: { kind: 'period-quota', limit: 5 } };
    expect(diffPlans(plan, { ...plan, limits: [burst, week] })).toEqual([
      { path: 'limits[day]', before: JSON.stringify(day), after: null },
      { path: 'limits[week]', before: null, after: JSON.stringify(week) },
    ]);
    expect(diffPlans(undefined, plan)).toEqual([{ path: '', before: null, after: JSON.stringify(plan) }]);
    expect(diffPlans(plan, { ...plan, version: 3 })).toEqual([]);
  });
});
