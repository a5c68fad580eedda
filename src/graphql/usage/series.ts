/**
 * `usageSeries`: the ledger's hourly rollups summed into hour or day buckets (UTC), per operation or
 * per limit. Exact: rollups are written in the ledger's own transactions. By limit: every limit of
 * the plan counts every admitted unit of the tenant (the decider takes each request's cost from each
 * of its limits), so each limit's series is the tenant's units; the ledger does not record limits.
 */
import type { LimitSpec } from '../../decider/index.js';
import type { HourRollup } from '../../metering/index.js';
import { ValidationError } from '../../shared/index.js';

export type Granularity = 'HOUR' | 'DAY';
export type SeriesBy = 'OPERATION' | 'LIMIT';

export interface SeriesInput {
  /** ISO-8601 instants; [from, to), at most 366 days apart, whole hours (DAY: whole UTC days). */
  from: string;
  to: string;
  granularity: Granularity;
  by: SeriesBy;
}

export interface SeriesPoint {
  /** Start of the bucket, ISO-8601 UTC. */
  start: string;
  /** The operation name or the limit id. */
  key: string;
  units: number;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
/** Longest range of one call: a leap year. */
export const MAX_SERIES_RANGE_MS = 366 * DAY_MS;

/**
 * The validated range of a series request.
 * @throws ValidationError `INVALID_INPUT` (unparsable instants, from ≥ to, range above 366 days, not aligned)
 */
export function seriesRange(input: SeriesInput): { fromMs: number; toMs: number; bucketMs: number } {
  const fromMs = Date.parse(input.from);
  const toMs = Date.parse(input.to);
  if (Number.isNaN(fromMs) || Number.isNaN(toMs)) throw new ValidationError('INVALID_INPUT', 'from and to must be ISO-8601 instants');
  if (fromMs >= toMs) throw new ValidationError('INVALID_INPUT', 'from must be before to');
  if (toMs - fromMs > MAX_SERIES_RANGE_MS) throw new ValidationError('INVALID_INPUT', 'a series covers at most 366 days');
  const bucketMs = input.granularity === 'DAY' ? DAY_MS : HOUR_MS;
  if (fromMs % bucketMs !== 0 || toMs % bucketMs !== 0) {
    throw new ValidationError('INVALID_INPUT', `from and to must be whole ${input.granularity === 'DAY' ? 'UTC days' : 'hours'}`);
  }
  return { fromMs, toMs, bucketMs };
}

/**
 * The points of one hour rollup, built once per rollup object: the reader keeps a month's rollups in memory
 * under the month's version (a new version is new objects), so a year's series rebuilds only the hours of
 * months that moved. The points are shared between answers and never changed.
 */
const hourPoints = new WeakMap<HourRollup, SeriesPoint[]>();

function pointsOfHour(hour: HourRollup): SeriesPoint[] {
  let points = hourPoints.get(hour);
  if (points === undefined) {
    const start = new Date(hour.hourStartMs).toISOString();
    points = Object.keys(hour.byOperation)
      .sort()
      .map((key) => ({ start, key, units: hour.byOperation[key] ?? 0 }));
    hourPoints.set(hour, points);
  }
  return points;
}

/** Hourly by operation: each rollup is its own bucket (no re-bucketing: a year is 8 760 of them). */
function hourlyByOperation(hours: HourRollup[], fromMs: number, toMs: number): SeriesPoint[] {
  let inRange = hours.filter((hour) => hour.hourStartMs >= fromMs && hour.hourStartMs < toMs);
  // the reader answers in time order: sorted only when it did not
  if (inRange.some((hour, index) => index > 0 && (inRange[index - 1]?.hourStartMs ?? 0) > hour.hourStartMs))
    inRange = inRange.sort((a, b) => a.hourStartMs - b.hourStartMs);
  const points: SeriesPoint[] = [];
  for (const hour of inRange) for (const point of pointsOfHour(hour)) points.push(point);
  return points;
}

/** Sums the hours into buckets; points are in time order, then key order, zero buckets left out. */
export async function seriesOf(
  input: SeriesInput,
  limits: readonly LimitSpec[],
  read: (range: { fromMs: number; toMs: number }) => Promise<HourRollup[]>,
): Promise<SeriesPoint[]> {
  const { fromMs, toMs, bucketMs } = seriesRange(input);
  const hours = await read({ fromMs, toMs });
  if (bucketMs === HOUR_MS && input.by === 'OPERATION') return hourlyByOperation(hours, fromMs, toMs);
  const buckets = new Map<number, Map<string, number>>();
  for (const hour of hours) {
    if (hour.hourStartMs < fromMs || hour.hourStartMs >= toMs) continue;
    const start = hour.hourStartMs - (hour.hourStartMs % bucketMs);
    let bucket = buckets.get(start);
    if (bucket === undefined) buckets.set(start, (bucket = new Map<string, number>()));
    if (input.by === 'OPERATION') {
      for (const [operation, units] of Object.entries(hour.byOperation)) bucket.set(operation, (bucket.get(operation) ?? 0) + units);
    } else {
      for (const limit of limits) bucket.set(limit.id, (bucket.get(limit.id) ?? 0) + hour.units);
    }
  }
  const points: SeriesPoint[] = [];
  for (const start of [...buckets.keys()].sort((a, b) => a - b)) {
    const bucket = buckets.get(start) as Map<string, number>;
    const iso = new Date(start).toISOString();
    for (const key of [...bucket.keys()].sort()) points.push({ start: iso, key, units: bucket.get(key) as number });
  }
  return points;
}
