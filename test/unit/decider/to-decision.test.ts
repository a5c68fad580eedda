import { describe, expect, it } from 'vitest';
import { compileRequest } from '../../../src/decider/compile.js';
import { toDecision } from '../../../src/decider/decider.js';
import type { RawDecision } from '../../../src/decider/model/layout.js';
import type { DecideInput, LimitSpec } from '../../../src/decider/ports.js';
import { parseEventId, parseKeyId, parseLimitId, parseTenantId } from '../../../src/shared/index.js';

const MONTH = { unit: 'month', anchorDay: 1, timeZone: 'UTC' } as const;

const LIMITS: LimitSpec[] = [
  {
    id: parseLimitId('month'),
    scope: 'tenant',
    algorithm: { kind: 'period-quota', limit: 100, period: MONTH, thresholdsPercent: [80] },
    mode: 'hard',
    onDeciderDown: 'open',
  },
  {
    id: parseLimitId('soft-minute'),
    scope: 'tenant',
    algorithm: { kind: 'fixed-window', limit: 10, windowMs: 60_000 },
    mode: 'soft',
    onDeciderDown: 'open',
  },
  {
    id: parseLimitId('probe'),
    scope: 'tenant',
    algorithm: { kind: 'fixed-window', limit: 5, windowMs: 60_000 },
    mode: 'shadow',
    onDeciderDown: 'open',
  },
];

const input: DecideInput = {
  tenant: parseTenantId('acme'),
  keyId: parseKeyId('k1'),
  requestId: parseEventId('r1'),
  operation: 'listProducts',
  cost: 7,
  limits: LIMITS,
  billingPeriod: MONTH,
  policyVersion: 1,
};
const compiled = compileRequest(input, { shardCount: 16, localNowMs: Date.UTC(2026, 11, 6) });

/** A script reply: per limit remaining, flags (1 exceeded, 2 took), overage, thresholdCrossed. */
function raw(kind: RawDecision['kind'], perLimit: [number, number, number, number][], extra: Partial<RawDecision> = {}): RawDecision {
  return {
    kind,
    nowMs: 1_000,
    limitIndex: 0,
    retryAfterMs: 0,
    streamId: '1-0',
    isReplay: false,
    limits: perLimit.map(([remaining, flags, overage, crossed]) => ({ remaining, resetMs: 50, flags, overage, crossed })),
    ...extra,
  };
}

describe('toDecision', () => {
  it('maps an allowed reply to its limit states, naming the shadow limits that would have denied', () => {
    const decision = toDecision(
      raw(0, [
        [93, 2, 0, 0],
        [3, 2, 0, 0],
        [0, 1, 2, 0],
      ]),
      compiled,
    );
    expect(decision).toEqual({
      kind: 'allowed',
      usageId: 'r1',
      streamId: '1-0',
      nowMs: 1_000,
      isReplay: false,
      shadowDenials: ['probe'],
      limits: [
        { id: 'month', kind: 'period-quota', mode: 'hard', remaining: 93, resetMs: 50, isExceeded: false, hasTaken: true, overage: 0 },
        { id: 'soft-minute', kind: 'fixed-window', mode: 'soft', remaining: 3, resetMs: 50, isExceeded: false, hasTaken: true, overage: 0 },
        { id: 'probe', kind: 'fixed-window', mode: 'shadow', remaining: 0, resetMs: 50, isExceeded: true, hasTaken: false, overage: 2 },
      ],
    });
  });

  it('names no shadow denial when every shadow limit fits', () => {
    const decision = toDecision(
      raw(0, [
        [93, 2, 0, 0],
        [3, 2, 0, 0],
        [1, 2, 0, 0],
      ]),
      compiled,
    );
    expect(decision.kind === 'allowed' && decision.shadowDenials).toEqual([]);
  });

  it('maps a warned reply: an exceeded soft limit and a crossed threshold are warnings, a shadow limit never', () => {
    const decision = toDecision(
      raw(1, [
        [15, 2, 0, 80],
        [0, 3, 4, 0],
        [0, 1, 2, 0],
      ]),
      compiled,
    );
    expect(decision.kind).toBe('warned');
    if (decision.kind !== 'warned') return;
    expect(decision.warnings).toEqual([
      { kind: 'threshold-crossed', limitId: 'month', percent: 80 },
      { kind: 'soft-limit-exceeded', limitId: 'soft-minute', overage: 4 },
    ]);
    expect(decision.shadowDenials).toEqual(['probe']);
    expect(decision.usageId).toBe('r1');
  });

  it('maps a denial to the limit it names, and a replay decided under another plan to no limit states', () => {
    const denied = toDecision(
      raw(
        3,
        [
          [2, 1, 5, 0],
          [3, 0, 0, 0],
          [1, 0, 0, 0],
        ],
        { limitIndex: 1, retryAfterMs: -1 },
      ),
      compiled,
    );
    expect(denied).toMatchObject({ kind: 'denied', limitId: 'month', isQuota: true, retryAfterMs: null, nowMs: 1_000 });
    const replay = toDecision(raw(0, [[1, 2, 0, 0]], { isReplay: true }), compiled);
    expect(replay).toMatchObject({ kind: 'allowed', isReplay: true, limits: [], shadowDenials: [] });
    expect(() => toDecision(raw(0, [[1, 2, 0, 0]]), compiled)).toThrow(/wrong number of limits/);
  });
});
