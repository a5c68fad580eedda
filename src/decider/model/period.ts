/**
 * Calendar periods in a tenant's IANA time zone with an anchor day. Pure (no
 * I/O). A period is half-open [startMs, endMs): its boundary belongs to the
 * later period. A monthly period anchored on day d starts at local midnight
 * of day d (clamped to the month's last day) and ends at the next one.
 * A `second` period (tests, demos of period closing) lasts `lengthSeconds`
 * and is aligned to the Unix epoch; its zone and anchor do not apply.
 */

export type PeriodUnit = 'second' | 'day' | 'month';

/** Longest `second` period, 1 day: anything longer is a `day` or `month` period. */
export const MAX_PERIOD_SECONDS = 86_400;

export interface PeriodSpec {
  unit: PeriodUnit;
  /** `second` periods only: the length in seconds, 1..86400. @default 1 */
  lengthSeconds?: number;
  /** Day of month a monthly period starts on, 1..31 (clamped to short months). Ignored for days. @default 1 */
  anchorDay: number;
  /** IANA zone, e.g. `Europe/Paris`. @default 'UTC' */
  timeZone: string;
}

export interface Period {
  startMs: number;
  endMs: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let format = formatters.get(timeZone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, format);
  }
  return format;
}

/** True when `timeZone` is an IANA zone this runtime knows. */
export function isValidTimeZone(timeZone: string): boolean {
  try {
    formatter(timeZone);
    return true;
  } catch {
    return false;
  }
}

interface LocalParts {
  year: number;
  month: number; // 1..12
  day: number;
}

function localParts(instantMs: number, timeZone: string): LocalParts & { hour: number; minute: number; second: number } {
  const parts = formatter(timeZone).formatToParts(new Date(instantMs));
  const get = (type: Intl.DateTimeFormatPartTypes): number => Number(parts.find((part) => part.type === type)?.value);
  return { year: get('year'), month: get('month'), day: get('day'), hour: get('hour'), minute: get('minute'), second: get('second') };
}

/** Offset of the zone at an instant, in ms (local = utc + offset), at second precision. */
function offsetMs(instantMs: number, timeZone: string): number {
  const local = localParts(instantMs, timeZone);
  const asUtc = Date.UTC(local.year, local.month - 1, local.day, local.hour, local.minute, local.second);
  return asUtc - Math.floor(instantMs / 1000) * 1000;
}

/**
 * The instant of local midnight starting `date` in the zone. If that midnight
 * does not exist (a DST jump at 00:00), the first instant of the day.
 */
function localMidnight(date: LocalParts, timeZone: string): number {
  const wall = Date.UTC(date.year, date.month - 1, date.day);
  let guess = wall - offsetMs(wall, timeZone);
  // Two refinements settle any single offset change around the guess.
  for (let i = 0; i < 2; i += 1) guess = wall - offsetMs(guess, timeZone);
  const local = localParts(guess, timeZone);
  if (local.day !== date.day) {
    // Midnight was skipped: move forward to the first instant of the date.
    const forward = wall - offsetMs(guess + 3_600_000, timeZone);
    return forward;
  }
  return guess;
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

function addMonths({ year, month }: { year: number; month: number }, delta: number): { year: number; month: number } {
  const index = year * 12 + (month - 1) + delta;
  return { year: Math.floor(index / 12), month: (index % 12) + 1 };
}

function anchoredDate({ year, month }: { year: number; month: number }, anchorDay: number): LocalParts {
  return { year, month, day: Math.min(anchorDay, daysInMonth(year, month)) };
}

/** The period containing `instantMs`. */
export function periodAt(spec: PeriodSpec, instantMs: number): Period {
  if (spec.unit === 'second') {
    const lengthMs = (spec.lengthSeconds ?? 1) * 1000;
    const startMs = Math.floor(instantMs / lengthMs) * lengthMs;
    return { startMs, endMs: startMs + lengthMs };
  }
  const local = localParts(instantMs, spec.timeZone);
  if (spec.unit === 'day') {
    const next = new Date(Date.UTC(local.year, local.month - 1, local.day + 1));
    const startMs = localMidnight(local, spec.timeZone);
    const endMs = localMidnight({ year: next.getUTCFullYear(), month: next.getUTCMonth() + 1, day: next.getUTCDate() }, spec.timeZone);
    return { startMs, endMs };
  }
  let start = anchoredDate(local, spec.anchorDay);
  let startMs = localMidnight(start, spec.timeZone);
  if (instantMs < startMs) {
    start = anchoredDate(addMonths(local, -1), spec.anchorDay);
    startMs = localMidnight(start, spec.timeZone);
  }
  const endMs = localMidnight(anchoredDate(addMonths(start, 1), spec.anchorDay), spec.timeZone);
  return { startMs, endMs };
}

/** The period that follows `period` (it starts at `period.endMs`). */
export function nextPeriod(spec: PeriodSpec, period: Period): Period {
  return periodAt(spec, period.endMs);
}

/** The period containing an instant and the one after it. */
export interface PeriodPair {
  current: Period;
  next: Period;
}

const pairCache = new Map<string, PeriodPair>();
const pairBySpec = new WeakMap<PeriodSpec, PeriodPair>();

/**
 * `periodAt` and `nextPeriod` for an instant, remembered per spec until the
 * instant leaves the remembered period: zone arithmetic (Intl) runs once per
 * period boundary, not once per request. Pure in effect: the same inputs give
 * the same pair.
 */
export function periodPairAt(spec: PeriodSpec, instantMs: number): PeriodPair {
  // by object first (specs are plan data, reused), then by value
  const byObject = pairBySpec.get(spec);
  if (byObject !== undefined && byObject.current.startMs <= instantMs && instantMs < byObject.current.endMs) return byObject;
  const key = `${spec.unit}|${spec.lengthSeconds ?? 1}|${spec.anchorDay}|${spec.timeZone}`;
  let pair = pairCache.get(key);
  if (pair === undefined || pair.current.startMs > instantMs || instantMs >= pair.current.endMs) {
    const current = periodAt(spec, instantMs);
    pair = { current, next: nextPeriod(spec, current) };
    if (pairCache.size >= 10_000) pairCache.clear();
    pairCache.set(key, pair);
  }
  if (byObject !== pair) pairBySpec.set(spec, pair);
  return pair;
}

/** How far the local clock may trail Redis when naming periods: periods are named from now − this. */
export const PERIOD_SKEW_ALLOWANCE_MS = 60_000;

/**
 * How far back a spec's periods are named: the skew allowance, but at most half of a `second`
 * period, so the named pair (current and next) still contains the local now (a 4-second period
 * named 60 s back would always be stale). Clock skew tolerated either way: that amount.
 */
export function namingSkewMs(spec: PeriodSpec): number {
  if (spec.unit !== 'second') return PERIOD_SKEW_ALLOWANCE_MS;
  return Math.min(PERIOD_SKEW_ALLOWANCE_MS, Math.floor(((spec.lengthSeconds ?? 1) * 1000) / 2));
}

/**
 * A plan's period in a tenant's calendar: the plan says the unit (and a `second` period's length), the
 * tenant's billing period says the anchor day and the zone (one source of truth for both, DESIGN §4). The
 * same object when nothing changes, so caches keyed by spec object keep working.
 */
export function inTenantCalendar(planPeriod: PeriodSpec, tenantPeriod: PeriodSpec): PeriodSpec {
  if (planPeriod.unit === 'second') return planPeriod;
  if (planPeriod.anchorDay === tenantPeriod.anchorDay && planPeriod.timeZone === tenantPeriod.timeZone) return planPeriod;
  return { ...planPeriod, anchorDay: tenantPeriod.anchorDay, timeZone: tenantPeriod.timeZone };
}
