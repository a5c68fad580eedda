import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isValidTimeZone, nextPeriod, periodAt, periodPairAt, type PeriodSpec } from '../../../src/decider/model/period.js';

const iso = (ms: number): string => new Date(ms).toISOString();
const at = (text: string): number => Date.parse(text);

describe('periodAt', () => {
  it('a UTC month anchored on the 1st', () => {
    const period = periodAt({ unit: 'month', anchorDay: 1, timeZone: 'UTC' }, at('2026-11-23T07:00:00Z'));
    expect([iso(period.startMs), iso(period.endMs)]).toEqual(['2026-11-01T00:00:00.000Z', '2026-12-01T00:00:00.000Z']);
  });

  it('clamps an anchor on the 31st to the last day of short months', () => {
    const spec: PeriodSpec = { unit: 'month', anchorDay: 31, timeZone: 'UTC' };
    const period = periodAt(spec, at('2026-02-15T00:00:00Z'));
    expect([iso(period.startMs), iso(period.endMs)]).toEqual(['2026-01-31T00:00:00.000Z', '2026-02-28T00:00:00.000Z']);
    const next = nextPeriod(spec, period);
    expect([iso(next.startMs), iso(next.endMs)]).toEqual(['2026-02-28T00:00:00.000Z', '2026-03-31T00:00:00.000Z']);
  });

  it('follows the tenant zone across a DST change (New York, November)', () => {
    const period = periodAt({ unit: 'month', anchorDay: 1, timeZone: 'America/New_York' }, at('2026-11-15T12:00:00Z'));
    expect([iso(period.startMs), iso(period.endMs)]).toEqual(['2026-11-01T04:00:00.000Z', '2026-12-01T05:00:00.000Z']);
  });

  it('a local day is 23 hours long when DST starts (Paris)', () => {
    const day = periodAt({ unit: 'day', anchorDay: 1, timeZone: 'Europe/Paris' }, at('2026-03-29T12:00:00Z'));
    expect([iso(day.startMs), iso(day.endMs)]).toEqual(['2026-03-28T23:00:00.000Z', '2026-03-29T22:00:00.000Z']);
  });

  it('starts a day at its first instant when local midnight does not exist (Santiago)', () => {
    const day = periodAt({ unit: 'day', anchorDay: 1, timeZone: 'America/Santiago' }, at('2026-09-06T12:00:00Z'));
    expect(iso(day.startMs)).toBe('2026-09-06T04:00:00.000Z');
  });

  it('gives a boundary instant to the later period', () => {
    const spec: PeriodSpec = { unit: 'month', anchorDay: 1, timeZone: 'UTC' };
    expect(iso(periodAt(spec, at('2026-12-01T00:00:00Z')).startMs)).toBe('2026-12-01T00:00:00.000Z');
    expect(iso(periodAt(spec, at('2026-11-30T23:59:59.999Z')).startMs)).toBe('2026-11-01T00:00:00.000Z');
  });

  it('periods tile time: each contains its instant, is stable, and ends where the next starts', () => {
    const zones = ['UTC', 'Europe/Paris', 'America/New_York', 'Asia/Kolkata', 'Australia/Lord_Howe', 'America/Santiago', 'Pacific/Chatham'];
    fc.assert(
      fc.property(
        fc.integer({ min: at('2020-01-01T00:00:00Z'), max: at('2035-01-01T00:00:00Z') }),
        fc.constantFrom(...zones),
        fc.constantFrom('day' as const, 'month' as const),
        fc.integer({ min: 1, max: 31 }),
        (instant, timeZone, unit, anchorDay) => {
          const spec: PeriodSpec = { unit, anchorDay, timeZone };
          const period = periodAt(spec, instant);
          expect(period.startMs).toBeLessThanOrEqual(instant);
          expect(instant).toBeLessThan(period.endMs);
          expect(periodAt(spec, period.startMs)).toEqual(period);
          expect(periodAt(spec, period.endMs - 1)).toEqual(period);
          expect(nextPeriod(spec, period).startMs).toBe(period.endMs);
          const hours = (period.endMs - period.startMs) / 3_600_000;
          if (unit === 'day') expect(hours >= 22 && hours <= 25).toBe(true);
          else expect(hours >= 27 * 24 && hours <= 31 * 24 + 1).toBe(true);
        },
      ),
      { numRuns: 2_000 },
    );
  });
});

describe('periodPairAt', () => {
  it('gives what periodAt and nextPeriod give, also when instants cross a boundary in either direction', () => {
    const spec: PeriodSpec = { unit: 'day', anchorDay: 1, timeZone: 'Europe/Paris' };
    for (const instant of [
      '2026-03-28T22:59:59.999Z',
      '2026-03-28T23:00:00Z',
      '2026-03-29T21:59:59.999Z',
      '2026-03-29T22:00:00Z',
      '2026-03-28T12:00:00Z',
    ]) {
      const current = periodAt(spec, at(instant));
      expect(periodPairAt(spec, at(instant))).toEqual({ current, next: nextPeriod(spec, current) });
    }
  });
});

describe('isValidTimeZone', () => {
  it('accepts IANA zones and rejects anything else', () => {
    expect(isValidTimeZone('Europe/Paris')).toBe(true);
    expect(isValidTimeZone('Mars/Olympus')).toBe(false);
    expect(isValidTimeZone('')).toBe(false);
  });
});

describe('second periods (tests, demos)', () => {
  it('are aligned to the epoch and half-open: the boundary belongs to the later period', () => {
    const spec: PeriodSpec = { unit: 'second', lengthSeconds: 5, anchorDay: 1, timeZone: 'UTC' };
    expect(periodAt(spec, 1_795_000_004_999)).toEqual({ startMs: 1_795_000_000_000, endMs: 1_795_000_005_000 });
    expect(periodAt(spec, 1_795_000_005_000)).toEqual({ startMs: 1_795_000_005_000, endMs: 1_795_000_010_000 });
    expect(nextPeriod(spec, periodAt(spec, 1_795_000_001_000))).toEqual({ startMs: 1_795_000_005_000, endMs: 1_795_000_010_000 });
  });

  it('contain their instant, tile time without gaps, and pair with the next one', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 86_400 }), fc.integer({ min: 0, max: 4_000_000_000_000 }), (lengthSeconds, instantMs) => {
        const spec: PeriodSpec = { unit: 'second', lengthSeconds, anchorDay: 1, timeZone: 'UTC' };
        const period = periodAt(spec, instantMs);
        expect(period.startMs <= instantMs && instantMs < period.endMs).toBe(true);
        expect(period.endMs - period.startMs).toBe(lengthSeconds * 1000);
        expect(periodAt(spec, period.endMs).startMs).toBe(period.endMs);
        expect(periodPairAt(spec, instantMs)).toEqual({ current: period, next: nextPeriod(spec, period) });
      }),
    );
  });
});
