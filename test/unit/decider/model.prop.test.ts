import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseIpHex } from '../../../src/decider/keys.js';
import { ALG, MODE, decideModel, emptyModelState, type CompiledLimit } from '../../../src/decider/model/limits.js';

const limit = (partial: Partial<CompiledLimit>): CompiledLimit => ({
  alg: ALG.tokenBucket,
  mode: MODE.hard,
  p1: 10,
  p2: 1,
  p3: 1000,
  p4: 0,
  thresholds: [],
  key: 'k',
  ...partial,
});

/** Random request times (non-decreasing) and costs. */
const trafficArb = fc.array(fc.record({ gapMs: fc.integer({ min: 0, max: 50 }), cost: fc.integer({ min: 0, max: 12 }) }), {
  minLength: 1,
  maxLength: 200,
});

function run(lim: CompiledLimit, traffic: { gapMs: number; cost: number }[]): { now: number; cost: number }[] {
  const state = emptyModelState();
  let now = 1_000_000;
  const admitted: { now: number; cost: number }[] = [];
  traffic.forEach((request, index) => {
    now += request.gapMs;
    const reply = decideModel(state, { requestId: `r${index}`, recordKey: `rec${index}`, cost: request.cost, limits: [lim] }, now);
    if (reply.kind <= 1) admitted.push({ now, cost: request.cost });
  });
  return admitted;
}

describe('token bucket model', () => {
  it('never admits more than capacity plus what refilled over any span', () => {
    fc.assert(
      fc.property(
        trafficArb,
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 40 }),
        (traffic, cap, rate, per) => {
          const admitted = run(limit({ p1: cap, p2: rate, p3: per }), traffic);
          for (let i = 0; i < admitted.length; i += 1) {
            let sum = 0;
            for (let j = i; j < admitted.length; j += 1) {
              sum += (admitted[j] as { cost: number }).cost;
              const span = (admitted[j] as { now: number }).now - (admitted[i] as { now: number }).now;
              expect(sum).toBeLessThanOrEqual(cap + Math.floor((span * rate) / per));
            }
          }
        },
      ),
    );
  });

  it('admits a request whenever the bucket provably holds enough (no under-admission after a full refill)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 0, max: 50 }), (cap, cost) => {
        const state = emptyModelState();
        const lim = limit({ p1: cap, p2: 1, p3: 10 });
        decideModel(state, { requestId: 'a', recordKey: 'a', cost: cap, limits: [lim] }, 0);
        // after cap·10 ms the bucket is full again
        const reply = decideModel(state, { requestId: 'b', recordKey: 'b', cost, limits: [lim] }, cap * 10);
        expect(reply.kind === 0).toBe(cost <= cap);
      }),
    );
  });
});

describe('window models', () => {
  it('a fixed window admits at most its limit per window', () => {
    fc.assert(
      fc.property(trafficArb, fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 100 }), (traffic, max, windowMs) => {
        const admitted = run(limit({ alg: ALG.fixedWindow, p1: max, p2: windowMs }), traffic);
        const perWindow = new Map<number, number>();
        for (const { now, cost } of admitted)
          perWindow.set(Math.floor(now / windowMs), (perWindow.get(Math.floor(now / windowMs)) ?? 0) + cost);
        for (const total of perWindow.values()) expect(total).toBeLessThanOrEqual(max);
      }),
    );
  });

  it('a sliding window admits at most its limit within each fixed window', () => {
    fc.assert(
      fc.property(trafficArb, fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 100 }), (traffic, max, windowMs) => {
        const admitted = run(limit({ alg: ALG.slidingWindow, p1: max, p2: windowMs }), traffic);
        const perWindow = new Map<number, number>();
        for (const { now, cost } of admitted)
          perWindow.set(Math.floor(now / windowMs), (perWindow.get(Math.floor(now / windowMs)) ?? 0) + cost);
        for (const total of perWindow.values()) expect(total).toBeLessThanOrEqual(max);
      }),
    );
  });
});

describe('modes', () => {
  it('a shadow limit never denies and a soft limit warns instead of denying', () => {
    const state = emptyModelState();
    const shadow = limit({ mode: MODE.shadow, p1: 1, key: 's' });
    const soft = limit({ alg: ALG.fixedWindow, mode: MODE.soft, p1: 1, p2: 1_000_000, key: 'f' });
    const first = decideModel(state, { requestId: '1', recordKey: '1', cost: 1, limits: [shadow, soft] }, 0);
    const second = decideModel(state, { requestId: '2', recordKey: '2', cost: 1, limits: [shadow, soft] }, 0);
    expect(first.kind).toBe(0);
    expect(second.kind).toBe(1);
    expect(second.limits.map((entry) => entry.flags)).toEqual([1, 3]);
    expect(second.limits[1]?.overage).toBe(1);
  });
});

describe('parseIpHex', () => {
  it('encodes v4, v4-mapped v6 and v6 addresses, and rejects the rest', () => {
    expect(parseIpHex('10.0.0.255')).toBe('0a0000ff');
    expect(parseIpHex('::ffff:10.0.0.255')).toBe('0a0000ff');
    expect(parseIpHex('2001:db8::1')).toBe('20010db8000000000000000000000001');
    expect(parseIpHex('::1')).toBe('00000000000000000000000000000001');
    for (const bad of ['', 'localhost', '1.2.3', '{s:1}', '2001:db8::1\n']) expect(() => parseIpHex(bad)).toThrow(/invalid client address/);
  });
});
