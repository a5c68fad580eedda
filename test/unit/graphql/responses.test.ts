import { describe, expect, it } from 'vitest';
import { applyRefund, costExtension, rateLimitHeaders, retryAfterSeconds, warningReports } from '../../../src/graphql/index.js';
import type { LimitSpec, LimitState } from '../../../src/decider/index.js';
import { parseLimitId } from '../../../src/shared/index.js';
import { MONTH } from '../../support/time.js';

const specs: LimitSpec[] = [
  {
    id: parseLimitId('burst'),
    scope: 'apiKey',
    algorithm: { kind: 'token-bucket', capacity: 1000, refillAmount: 50, refillPeriodMs: 1000 },
    mode: 'hard',
    onDeciderDown: 'open',
  },
  {
    id: parseLimitId('month'),
    scope: 'tenant',
    algorithm: { kind: 'period-quota', limit: 5_000_000, period: MONTH, thresholdsPercent: [80] },
    mode: 'soft',
    onDeciderDown: 'open',
  },
  {
    id: parseLimitId('probe'),
    scope: 'tenant',
    algorithm: { kind: 'fixed-window', limit: 10, windowMs: 60_000 },
    mode: 'shadow',
    onDeciderDown: 'open',
  },
];
const state = (id: string, remaining: number, resetMs: number, extra: Partial<LimitState> = {}): LimitState => ({
  id: parseLimitId(id),
  kind: 'token-bucket',
  mode: 'hard',
  remaining,
  resetMs,
  isExceeded: false,
  hasTaken: true,
  overage: 0,
  ...extra,
});
const states = [
  state('burst', 740, 5_200),
  state('month', 4_000_000, 86_400_000 * 3 + 1, { mode: 'soft' }),
  state('probe', 0, 1_000, { mode: 'shadow', isExceeded: true, hasTaken: false }),
];
// 2026-11-15T00:00:00Z: November has 30 days
const NOW = Date.UTC(2026, 10, 15);

describe('RateLimit headers', () => {
  it('follow the IETF draft and leave shadow limits out', () => {
    expect(rateLimitHeaders(states, specs, NOW)).toEqual({
      'RateLimit-Policy': '"burst";q=1000;w=20, "month";q=5000000;w=2592000',
      RateLimit: '"burst";r=740;t=6, "month";r=4000000;t=259201',
    });
  });
});

describe('extensions.cost', () => {
  it('reports the first enforced token bucket as throttle status and every limit, shadow included', () => {
    const cost = costExtension({ requested: 30, actual: 12, states, specs, receipt: 'r-1' });
    expect(cost).toEqual({
      requested: 30,
      actual: 12,
      refunded: 18,
      throttleStatus: { maximumAvailable: 1000, currentlyAvailable: 740, restoreRate: 50 },
      limits: [
        { id: 'burst', mode: 'hard', remaining: 740, resetMs: 5_200, isExceeded: false },
        { id: 'month', mode: 'soft', remaining: 4_000_000, resetMs: 259_200_001, isExceeded: false },
        { id: 'probe', mode: 'shadow', remaining: 0, resetMs: 1_000, isExceeded: true },
      ],
      receipt: 'r-1',
    });
  });

  it('returns a refund to the limits that took it, never above capacity', () => {
    const refunded = applyRefund([state('burst', 990, 0), ...states.slice(1)], specs, 18);
    expect(refunded.map((s) => s.remaining)).toEqual([1000, 4_000_018, 0]);
    expect(applyRefund(states, specs, -5).map((s) => s.remaining)).toEqual([735, 3_999_995, 0]);
  });
});

describe('Retry-After', () => {
  it('is the wait rounded up plus at most the jitter ratio, and at least 1 s', () => {
    expect(retryAfterSeconds(2_500, { jitterRatio: 0.2, random: () => 0 })).toBe(3);
    expect(retryAfterSeconds(2_500, { jitterRatio: 0.2, random: () => 0.999 })).toBe(3);
    expect(retryAfterSeconds(10_000, { jitterRatio: 0.2, random: () => 0.999 })).toBe(12);
    expect(retryAfterSeconds(10, { jitterRatio: 0.2, random: () => 0 })).toBe(1);
  });
});

describe('warnings', () => {
  it('name the limit with its overage or crossed threshold', () => {
    expect(
      warningReports([
        { kind: 'soft-limit-exceeded', limitId: parseLimitId('month'), overage: 12 },
        { kind: 'threshold-crossed', limitId: parseLimitId('month'), percent: 80 },
      ]).header,
    ).toBe('"month";overage=12, "month";percent=80');
  });
});
