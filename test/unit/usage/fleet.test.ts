/** Degraded-mode periods from the fleet's breaker changes (src/graphql/usage/fleet.ts), pure. */
import { describe, expect, it } from 'vitest';
import { degradedPeriods } from '../../../src/graphql/usage/fleet.js';

describe('degradedPeriods', () => {
  it("pairs each instance's first non-closed state with its next closed one, in time order, whatever order the list has", () => {
    const changes = [
      { atMs: 5_000, instance: 'b', state: 'closed' },
      { atMs: 1_000, instance: 'a', state: 'open' },
      { atMs: 2_000, instance: 'b', state: 'open' },
      { atMs: 3_000, instance: 'a', state: 'half-open' },
      { atMs: 4_000, instance: 'a', state: 'closed' },
      { atMs: 6_000, instance: 'a', state: 'open' },
    ];
    expect(degradedPeriods(changes, 0)).toEqual([
      { instance: 'a', fromMs: 1_000, toMs: 4_000, states: ['open', 'half-open'] },
      { instance: 'b', fromMs: 2_000, toMs: 5_000, states: ['open'] },
      { instance: 'a', fromMs: 6_000, toMs: null, states: ['open'] },
    ]);
  });

  it('leaves out periods that ended before the window, keeps ongoing ones and ignores a closed state with nothing open', () => {
    const changes = [
      { atMs: 1_000, instance: 'a', state: 'closed' },
      { atMs: 2_000, instance: 'a', state: 'open' },
      { atMs: 3_000, instance: 'a', state: 'closed' },
      { atMs: 4_000, instance: 'b', state: 'open' },
    ];
    expect(degradedPeriods(changes, 3_500)).toEqual([{ instance: 'b', fromMs: 4_000, toMs: null, states: ['open'] }]);
  });
});
