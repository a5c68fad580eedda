import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CircuitBreaker, type BreakerState } from '../../../src/decider/breaker.js';

function setup(random = 0.5): { breaker: CircuitBreaker; clock: { now: number; nowMs: () => number }; states: BreakerState[] } {
  const clock = { now: 1_000_000, nowMs: () => clock.now };
  const breaker = new CircuitBreaker(
    clock,
    { failureThreshold: 3, latencyBudgetMs: 25, slowThreshold: 2, cooldownMs: 1_000 },
    () => random,
  );
  const states: BreakerState[] = [];
  breaker.onChange((state) => states.push(state));
  return { breaker, clock, states };
}

describe('CircuitBreaker', () => {
  it('opens after the threshold of consecutive failures, not before, and a success resets the count', () => {
    const { breaker } = setup();
    breaker.failure();
    breaker.failure();
    breaker.success(1);
    breaker.failure();
    breaker.failure();
    expect(breaker.current).toBe('closed');
    breaker.failure();
    expect(breaker.current).toBe('open');
    expect(breaker.allow()).toBe(false);
  });

  it('does not open on calls that reached the wall-clock cap while Redis took little of them (a busy process), and does when Redis took its share', () => {
    const busy = { kind: 'failed', cause: 'wall-clock-cap', timing: { redisMs: 4, wallMs: 1_000 } } as const;
    const { breaker } = setup();
    for (let call = 0; call < 10; call += 1) breaker.heard(busy);
    expect(breaker.current).toBe('closed');
    // the same cap reached while Redis had most of the call (idle loop waiting for it): Redis is slow
    const slowRedis = { kind: 'failed', cause: 'wall-clock-cap', timing: { redisMs: 900, wallMs: 1_000 } } as const;
    for (let call = 0; call < 3; call += 1) breaker.heard(slowRedis);
    expect(breaker.current).toBe('open');
    // and a timeout of Redis' share is a failure event whatever else happened
    const other = setup().breaker;
    for (let call = 0; call < 3; call += 1) other.heard({ kind: 'failed', cause: 'timeout', timing: { redisMs: 50, wallMs: 60 } });
    expect(other.current).toBe('open');
  });

  it('frees its half-open probe slot on a busy call without closing or re-opening', () => {
    const { breaker, clock } = setup(0);
    for (let call = 0; call < 3; call += 1) breaker.failure();
    clock.now += 1_000;
    expect(breaker.allow()).toBe(true);
    expect(breaker.current).toBe('half-open');
    breaker.heard({ kind: 'failed', cause: 'wall-clock-cap', timing: { redisMs: 1, wallMs: 1_000 } });
    expect(breaker.current).toBe('half-open');
    expect(breaker.allow()).toBe(true);
    breaker.heard({ kind: 'answered', timing: { redisMs: 1, wallMs: 2 } });
    expect(breaker.current).toBe('closed');
  });

  it('opens after consecutive calls over the latency budget', () => {
    const { breaker } = setup();
    breaker.success(30);
    breaker.success(5);
    breaker.success(30);
    expect(breaker.current).toBe('closed');
    breaker.success(30);
    expect(breaker.current).toBe('open');
  });

  it('half-opens after the cooldown plus a jitter within [0, 0.2 × cooldown]', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 0.999_999, noNaN: true }), (random) => {
        const { breaker, clock } = setup(random);
        for (let i = 0; i < 3; i += 1) breaker.failure();
        const reopenAt = clock.now + 1_000 + random * 200;
        clock.now = Math.ceil(reopenAt) - 1;
        expect(breaker.allow()).toBe(false);
        clock.now = Math.ceil(reopenAt);
        expect(breaker.allow()).toBe(true);
        expect(breaker.current).toBe('half-open');
      }),
    );
  });

  it('lets one probe through; its success closes, its failure re-opens for a new cooldown', () => {
    const { breaker, clock, states } = setup(0);
    for (let i = 0; i < 3; i += 1) breaker.failure();
    clock.now += 1_000;
    expect(breaker.allow()).toBe(true);
    expect(breaker.allow()).toBe(false);
    breaker.failure();
    expect(breaker.current).toBe('open');
    expect(breaker.allow()).toBe(false);
    clock.now += 1_000;
    expect(breaker.allow()).toBe(true);
    breaker.success(1);
    expect(breaker.current).toBe('closed');
    expect(states).toEqual(['open', 'half-open', 'open', 'half-open', 'closed']);
  });

  it('frees the probe slot when the probe ends without a verdict (bad input), so it does not stay half-open forever', () => {
    const { breaker, clock } = setup(0);
    for (let i = 0; i < 3; i += 1) breaker.failure();
    clock.now += 1_000;
    expect(breaker.allow()).toBe(true);
    breaker.abandon();
    expect(breaker.current).toBe('half-open');
    expect(breaker.allow()).toBe(true);
    breaker.success(1);
    expect(breaker.current).toBe('closed');
  });
});
