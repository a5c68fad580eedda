import { describe, expect, it } from 'vitest';
import type { LimitSpec } from '../../../src/decider/index.js';
import { seriesOf, type SeriesInput } from '../../../src/graphql/usage/series.js';
import { projectUnits } from '../../../src/graphql/usage/usage-service.js';
import type { HourRollup } from '../../../src/metering/index.js';
import { ValidationError, parseLimitId } from '../../../src/shared/index.js';

const HOUR_MS = 3_600_000;
const START = Date.UTC(2026, 10, 30, 20);
const hours: HourRollup[] = Array.from({ length: 10 }, (_, index) => ({
  hourStartMs: START + index * HOUR_MS,
  units: 10 + index,
  entries: 2,
  byOperation: { getA: 7, getB: 3 + index },
}));
const limits = [{ id: parseLimitId('monthly') }, { id: parseLimitId('burst') }] as LimitSpec[];
const read = (): Promise<HourRollup[]> => Promise.resolve(hours);
const range = (granularity: SeriesInput['granularity'], by: SeriesInput['by']): SeriesInput => ({
  from: new Date(Date.UTC(2026, 10, 30)).toISOString(),
  to: new Date(Date.UTC(2026, 11, 2)).toISOString(),
  granularity,
  by,
});
const total = hours.reduce((sum, hour) => sum + hour.units, 0);

describe('seriesOf', () => {
  it('sums to the same total by hour and by UTC day, per operation and per limit', async () => {
    for (const granularity of ['HOUR', 'DAY'] as const) {
      const byOperation = await seriesOf(range(granularity, 'OPERATION'), limits, read);
      expect(byOperation.reduce((sum, point) => sum + point.units, 0)).toBe(total);
      const byLimit = await seriesOf(range(granularity, 'LIMIT'), limits, read);
      for (const id of ['monthly', 'burst']) {
        expect(byLimit.filter((point) => point.key === id).reduce((sum, point) => sum + point.units, 0)).toBe(total);
      }
    }
    const daily = await seriesOf(range('DAY', 'OPERATION'), limits, read);
    // 20:00..23:00 on Nov 30 (4 hours), the rest on Dec 1
    expect(daily).toEqual([
      { start: '2026-11-30T00:00:00.000Z', key: 'getA', units: 28 },
      { start: '2026-11-30T00:00:00.000Z', key: 'getB', units: 3 + 4 + 5 + 6 },
      { start: '2026-12-01T00:00:00.000Z', key: 'getA', units: 42 },
      { start: '2026-12-01T00:00:00.000Z', key: 'getB', units: 7 + 8 + 9 + 10 + 11 + 12 },
    ]);
    const hourly = await seriesOf(range('HOUR', 'OPERATION'), limits, read);
    expect(hourly[0]).toEqual({ start: '2026-11-30T20:00:00.000Z', key: 'getA', units: 7 });
    expect(hourly).toHaveLength(20);
  });

  it('refuses a bad range with INVALID_INPUT', async () => {
    const bad: SeriesInput[] = [
      { ...range('DAY', 'OPERATION'), from: 'yesterday' },
      { ...range('DAY', 'OPERATION'), from: range('DAY', 'OPERATION').to },
      { ...range('DAY', 'OPERATION'), from: '2024-01-01T00:00:00.000Z' },
      { ...range('DAY', 'OPERATION'), from: '2026-11-30T01:00:00.000Z' },
      { ...range('HOUR', 'OPERATION'), from: '2026-11-30T00:30:00.000Z' },
    ];
    for (const input of bad) {
      await expect(seriesOf(input, limits, read)).rejects.toBeInstanceOf(ValidationError);
    }
  });
});

describe('projectUnits', () => {
  it('extends the used units linearly to the period end, rounded down, exact for large values', () => {
    expect(projectUnits(100, 10, 30)).toBe(300);
    expect(projectUnits(10, 3, 10)).toBe(33);
    expect(projectUnits(0, 10, 30)).toBe(0);
    expect(projectUnits(50, 0, 30)).toBe(50);
    expect(projectUnits(50, 40, 30)).toBe(50);
    expect(projectUnits(2 ** 50, 1, 4)).toBe(2 ** 52);
  });
});
