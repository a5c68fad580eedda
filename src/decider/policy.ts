/**
 * Limit policies as data (DESIGN §4, STYLE §5): the one schema of a list of
 * limits (ranges, exact-arithmetic bounds, ids), used by the decider before
 * anything reaches Redis and by the edge to parse stored plans. Every problem
 * is collected, each named by its path (`limits[0].algorithm.capacity ...`).
 */
import { z } from 'zod';
import { ValidationError, parseLimitId, type LimitId } from '../shared/index.js';
import { MAX_PERIOD_SECONDS, inTenantCalendar, isValidTimeZone, type PeriodSpec } from './model/period.js';
import type { LimitAlgorithm, LimitSpec } from './ports.js';

const SAFE = Number.MAX_SAFE_INTEGER;
/** Longest window or refill period: 366 days in ms. */
const MAX_WINDOW_MS = 366 * 86_400_000;
/** Most limits that apply to one request (the script's KEYS stay bounded). */
const MAX_LIMITS = 64;
/** Most warning thresholds of one period quota. */
const MAX_THRESHOLDS = 8;

/**
 * A safe integer in `min..max`. Anything else (a float, a string, a missing value) is
 * `must be an integer in <min>..<max>, got <the value as JSON>`.
 */
export function integerIn(min: number, max: number): z.ZodType<number> {
  return z.custom<number>((value) => typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max, {
    error: (issue) => `must be an integer in ${min}..${max}, got ${JSON.stringify(issue.input)}`,
    // a bad field does not stop the other checks: every problem is reported
    abort: false,
  });
}

/** A list of at most `max` entries; unlike `.max()`, the entries are still checked when there are too many. */
function listOf<T extends z.ZodType>(entry: T, max: number): z.ZodType<z.output<T>[]> {
  return z.array(entry).superRefine(
    (list, ctx) => {
      if (Array.isArray(list) && list.length > max) ctx.addIssue({ code: 'custom', message: `has more than ${max} entries` });
    },
    { when: () => true },
  );
}

const timeZoneSchema = z.custom<string>((value) => typeof value === 'string' && value.length <= 64 && isValidTimeZone(value), {
  error: (issue) => `is not an IANA zone: ${String(issue.input)}`,
  abort: false,
});

/** A period (DESIGN §4): `second` periods (tests, demos) take `lengthSeconds`; zone and anchor always. */
export const periodSpecSchema: z.ZodType<PeriodSpec> = z.strictObject({
  unit: z.enum(['second', 'day', 'month'], { error: 'must be second, day or month' }),
  lengthSeconds: integerIn(1, MAX_PERIOD_SECONDS).exactOptional(),
  anchorDay: integerIn(1, 31),
  timeZone: timeZoneSchema,
});

const tokenBucketSchema = z
  .strictObject({
    kind: z.literal('token-bucket'),
    capacity: integerIn(1, SAFE),
    refillAmount: integerIn(1, SAFE),
    refillPeriodMs: integerIn(1, MAX_WINDOW_MS),
  })
  .superRefine((alg, ctx) => {
    // exact integer refill math in Lua doubles needs capacity·period + period·amount < 2^53
    if (alg.capacity * alg.refillPeriodMs + alg.refillPeriodMs * alg.refillAmount >= SAFE) {
      ctx.addIssue({ code: 'custom', message: 'must keep capacity × refillPeriodMs + refillPeriodMs × refillAmount below 2^53' });
    }
  });

const slidingWindowSchema = z
  .strictObject({ kind: z.literal('sliding-window'), limit: integerIn(1, SAFE), windowMs: integerIn(1, MAX_WINDOW_MS) })
  .superRefine((alg, ctx) => {
    // the script weighs the previous window: limit × windowMs sums must stay exact
    if (2 * alg.limit * alg.windowMs >= SAFE) ctx.addIssue({ code: 'custom', message: 'must keep 2 × limit × windowMs below 2^53' });
  });

const algorithmSchema: z.ZodType<LimitAlgorithm> = z.discriminatedUnion(
  'kind',
  [
    tokenBucketSchema,
    z.strictObject({ kind: z.literal('fixed-window'), limit: integerIn(1, SAFE), windowMs: integerIn(1, MAX_WINDOW_MS) }),
    slidingWindowSchema,
    z.strictObject({
      kind: z.literal('period-quota'),
      limit: integerIn(1, SAFE),
      period: periodSpecSchema,
      thresholdsPercent: listOf(integerIn(1, 1000), MAX_THRESHOLDS),
    }),
    z.strictObject({ kind: z.literal('concurrency'), slots: integerIn(1, 1_000_000), leaseTtlMs: integerIn(1, 86_400_000) }),
  ],
  { error: (issue) => (issue.code === 'invalid_union' ? 'is unknown' : undefined) },
);

const limitIdSchema = z.unknown().transform((raw, ctx): LimitId => {
  try {
    return parseLimitId(raw);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'is not a valid id' });
    return z.NEVER;
  }
});

const limitSchema: z.ZodType<LimitSpec> = z.strictObject({
  id: limitIdSchema,
  scope: z.enum(['tenant', 'apiKey', 'ip'], { error: 'must be tenant, apiKey or ip' }),
  algorithm: algorithmSchema,
  mode: z.enum(['hard', 'soft', 'defer', 'shadow'], { error: 'must be hard, soft, defer or shadow' }),
  onDeciderDown: z.enum(['open', 'closed', 'local'], { error: 'must be open, closed or local' }),
});

/** The limits of one request: at most 64, each id once per scope. */
export const limitsSchema: z.ZodType<LimitSpec[]> = listOf(limitSchema, MAX_LIMITS).superRefine(
  (limits, ctx) => {
    if (!Array.isArray(limits)) return;
    const seen = new Set<string>();
    limits.forEach((limit: unknown, index) => {
      if (typeof limit !== 'object' || limit === null) return;
      const { id, scope } = limit as { id?: unknown; scope?: unknown };
      if (typeof id !== 'string' || typeof scope !== 'string') return;
      if (seen.has(`${scope}:${id}`)) ctx.addIssue({ code: 'custom', path: [index, 'id'], message: `${id} is repeated in scope ${scope}` });
      seen.add(`${scope}:${id}`);
    });
  },
  { when: () => true },
);

/** `limits[0].algorithm` for a path under `root`; the root is named unless the path starts with a field name. */
function pathLabel(path: readonly PropertyKey[], root: string): string {
  let label = typeof path[0] === 'string' ? '' : root;
  for (const segment of path) {
    if (typeof segment === 'number') label += `[${segment}]`;
    else label += label === '' ? String(segment) : `.${String(segment)}`;
  }
  return label;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.length === 1 ? `has an unknown field: ${issue.keys[0] ?? ''}` : `has unknown fields: ${issue.keys.join(', ')}`;
  }
  if (issue.code === 'invalid_type')
    return `must be ${issue.expected === 'array' || issue.expected === 'object' ? 'an' : 'a'} ${issue.expected}`;
  return issue.message;
}

/**
 * One line per schema problem, `<path> <problem>`, in the schema's order. `root` names
 * the parsed value itself (`limits`, `plan`) where a path does not start with a field.
 */
export function schemaProblems(error: z.ZodError, root: string): string[] {
  return error.issues.map((issue) => `${pathLabel(issue.path, root)} ${describeIssue(issue)}`);
}

/**
 * Parses a list of limits from untrusted data (JSON, a stored plan).
 * @throws ValidationError `INVALID_INPUT`: `invalid limits:` then every problem, one per line (also in `details.problems`)
 */
export function parseLimits(raw: unknown): LimitSpec[] {
  const parsed = limitsSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const problems = schemaProblems(parsed.error, 'limits');
  throw new ValidationError('INVALID_INPUT', `invalid limits:\n${problems.join('\n')}`, { details: { problems } });
}

/**
 * Checks a list of limits built in code (the decider runs it once per limits array).
 * @throws ValidationError `INVALID_INPUT` as `parseLimits`
 */
export function validateLimits(limits: LimitSpec[]): void {
  parseLimits(limits);
}

/** Calendars remembered per limits array (a plan's limits are reused; each tenant calendar is built once). */
const MAX_CALENDARS_PER_LIMITS = 1_000;
const inCalendar = new WeakMap<readonly LimitSpec[], Map<string, LimitSpec[]>>();

/**
 * The limits with every period quota in the tenant's calendar (`inTenantCalendar`: the quota's unit, the
 * tenant's anchor day and zone). The same array when no quota changes, and the same array for the same
 * limits and calendar on every call (the decider's compiled-plan cache keys off the array).
 */
export function limitsInTenantCalendar(limits: LimitSpec[], tenantPeriod: PeriodSpec): LimitSpec[] {
  const key = `${tenantPeriod.anchorDay}|${tenantPeriod.timeZone}`;
  let byCalendar = inCalendar.get(limits);
  const known = byCalendar?.get(key);
  if (known !== undefined) return known;
  let isChanged = false;
  const moved = limits.map((limit) => {
    if (limit.algorithm.kind !== 'period-quota') return limit;
    const period = inTenantCalendar(limit.algorithm.period, tenantPeriod);
    if (period === limit.algorithm.period) return limit;
    isChanged = true;
    return { ...limit, algorithm: { ...limit.algorithm, period } };
  });
  const result = isChanged ? moved : limits;
  if (byCalendar === undefined) inCalendar.set(limits, (byCalendar = new Map<string, LimitSpec[]>()));
  if (byCalendar.size >= MAX_CALENDARS_PER_LIMITS) byCalendar.clear();
  byCalendar.set(key, result);
  return result;
}
