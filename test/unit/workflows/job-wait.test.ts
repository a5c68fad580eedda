import { describe, expect, it } from 'vitest';
import { nextWaitMs } from '../../../src/workflows/workflows/run-deferred-job.js';

const BOUNDS = { retryMinMs: 1_000, retryMaxMs: 60_000 };

describe('nextWaitMs (a deferred job between two admission attempts)', () => {
  it('waits what the limiter says when it is within the bounds', () => {
    expect(nextWaitMs({ ...BOUNDS, retryAfterMs: 2_500, blindWaits: 0 })).toBe(2_500);
  });

  it("clamps the limiter's wait to the configured minimum and maximum", () => {
    expect(nextWaitMs({ ...BOUNDS, retryAfterMs: 3, blindWaits: 0 })).toBe(1_000);
    expect(nextWaitMs({ ...BOUNDS, retryAfterMs: 86_400_000, blindWaits: 0 })).toBe(60_000);
  });

  it('backs off exponentially from the minimum when the limiter gives no time, up to the maximum', () => {
    const waits = [0, 1, 2, 3, 4, 5, 6, 7, 200].map((blindWaits) => nextWaitMs({ ...BOUNDS, retryAfterMs: null, blindWaits }));
    expect(waits).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
  });
});
