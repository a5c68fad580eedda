import { describe, expect, it } from 'vitest';
import { FinishedJobCache } from '../../../src/jobs/index.js';
import { KeyRateLimiter } from '../../../src/graphql/local-limiter.js';
import type { JobView } from '../../../src/jobs/index.js';

function manualClock(startMs = 1_000_000) {
  let nowMs = startMs;
  return { nowMs: () => nowMs, advance: (ms: number) => void (nowMs += ms) };
}

function view(id: string, status: JobView['status']): JobView {
  return {
    id,
    status,
    operationName: 'Export',
    requestedCost: 5,
    actualCost: null,
    result: null,
    errorCode: null,
    createdAtMs: 1,
    updatedAtMs: 2,
    startedAtMs: null,
    finishedAtMs: null,
    expiresAtMs: 3,
  };
}

describe('KeyRateLimiter', () => {
  it('allows a burst of twice the rate, then refuses with the time until the next token', () => {
    const clock = manualClock();
    const limiter = new KeyRateLimiter({ perSecond: 4, clock });
    const results = Array.from({ length: 9 }, () => limiter.take('a'));
    expect(results.filter((result) => result.isAllowed)).toHaveLength(8);
    expect(results[8]).toEqual({ isAllowed: false, retryAfterMs: 250 });
    clock.advance(100);
    expect(limiter.take('a')).toEqual({ isAllowed: false, retryAfterMs: 150 });
    clock.advance(150);
    expect(limiter.take('a')).toEqual({ isAllowed: true });
  });

  it('keeps one bucket per key: one key spending its burst leaves another untouched', () => {
    const limiter = new KeyRateLimiter({ perSecond: 1, burst: 1, clock: manualClock() });
    expect(limiter.take('t1\nk1').isAllowed).toBe(true);
    expect(limiter.take('t1\nk1').isAllowed).toBe(false);
    expect(limiter.take('t2\nk1').isAllowed).toBe(true);
  });

  it('refills nothing when the clock goes back, and never above the burst', () => {
    const clock = manualClock();
    const limiter = new KeyRateLimiter({ perSecond: 1, burst: 2, clock });
    limiter.take('a');
    limiter.take('a');
    clock.advance(-5_000);
    expect(limiter.take('a').isAllowed).toBe(false);
    clock.advance(3_600_000);
    expect([limiter.take('a'), limiter.take('a'), limiter.take('a')].map((result) => result.isAllowed)).toEqual([true, true, false]);
  });

  it('tracks at most maxKeys keys, dropping the least recently seen', () => {
    const limiter = new KeyRateLimiter({ perSecond: 1, burst: 1, maxKeys: 2, clock: manualClock() });
    limiter.take('a');
    limiter.take('b');
    limiter.take('a');
    limiter.take('c');
    expect(limiter.size).toBe(2);
    // b was dropped, a (seen after b) is kept and still spent
    expect(limiter.take('a').isAllowed).toBe(false);
    expect(limiter.take('b').isAllowed).toBe(true);
    expect(limiter.size).toBe(2);
  });

  it('check() tells whether a token is there without taking it', () => {
    const clock = manualClock();
    const limiter = new KeyRateLimiter({ perSecond: 1, burst: 1, clock });
    expect(limiter.check('a')).toEqual({ isAllowed: true });
    expect(limiter.size).toBe(0);
    expect(limiter.check('a')).toEqual({ isAllowed: true });
    limiter.take('a');
    expect(limiter.check('a')).toEqual({ isAllowed: false, retryAfterMs: 1_000 });
    clock.advance(1_000);
    expect(limiter.check('a')).toEqual({ isAllowed: true });
    expect(limiter.take('a')).toEqual({ isAllowed: true });
  });

  it('refuses a rate that is not positive', () => {
    expect(() => new KeyRateLimiter({ perSecond: 0, clock: manualClock() })).toThrow(RangeError);
  });
});

describe('FinishedJobCache', () => {
  it('keeps finished jobs until their time is up, and never an unfinished one', () => {
    const clock = manualClock();
    const cache = new FinishedJobCache({ ttlMs: 1_000, clock });
    cache.offer('t1', view('j-1', 'queued'));
    cache.offer('t1', view('j-2', 'running'));
    cache.offer('t1', view('j-3', 'succeeded'));
    cache.offer('t1', view('j-4', 'expired'));
    expect(cache.get('t1', 'j-1')).toBeUndefined();
    expect(cache.get('t1', 'j-2')).toBeUndefined();
    expect(cache.get('t1', 'j-3')?.status).toBe('succeeded');
    expect(cache.get('t1', 'j-4')?.status).toBe('expired');
    clock.advance(1_000);
    expect(cache.get('t1', 'j-3')).toBeUndefined();
    expect(cache.size).toBe(1);
  });

  it('serves a job only under its own tenant', () => {
    const cache = new FinishedJobCache({ clock: manualClock() });
    cache.offer('t1', view('j-1', 'failed'));
    expect(cache.get('t2', 'j-1')).toBeUndefined();
    expect(cache.get('t1', 'j-1')?.id).toBe('j-1');
  });

  it('keeps at most maxJobs, dropping the oldest kept', () => {
    const cache = new FinishedJobCache({ maxJobs: 2, clock: manualClock() });
    for (const id of ['j-1', 'j-2', 'j-3']) cache.offer('t1', view(id, 'succeeded'));
    expect(cache.size).toBe(2);
    expect(cache.get('t1', 'j-1')).toBeUndefined();
    expect(cache.get('t1', 'j-3')?.id).toBe('j-3');
  });
});
