/**
 * Fleet-wide figures (the admin API's `operations { fleet }`, issue 18): denials, deferrals and degraded-mode
 * decisions by limit per minute, and each instance's decider breaker changes (degraded-mode periods), summed over
 * every API process, not only the one answering.
 *
 * Each API process counts its refusals in memory (`ActivityRecorder.record`) and hears its breaker's changes; its
 * one-second flush writes what moved in ONE MULTI (HINCRBY per counter, RPUSH of the changes), off the request path.
 * Exact as the other activity counters: once flushed; a failed flush is retried whole; a lost MULTI reply counts
 * twice; a SIGKILLed process loses its last second. A breaker change is stamped with the instance's clock when it
 * happened (not when flushed); while Redis is unreachable (often the very reason the breaker opened) the changes wait
 * in memory and land when it answers again.
 *
 * Keys (hash tag `{fleet}`: one slot, one MULTI on a cluster):
 *   `tollgate:fleet:v1:{fleet}:m:<minuteStartMs>`  hash  `<kind>|<limit>` → decisions in that UTC minute (expires after 25 h)
 *   `tollgate:fleet:v1:{fleet}:breaker`            list  the last 1000 breaker changes, JSON { atMs, instance, state } (7 days)
 */
import type { DeciderRedis } from '../../decider/index.js';
import { DependencyError, ValidationError } from '../../shared/index.js';

const PREFIX = 'tollgate:fleet:v1:{fleet}';
const MINUTE_MS = 60_000;
const MINUTE_KEEP_MS = 25 * 3_600_000;
const BREAKER_KEY = `${PREFIX}:breaker`;
const BREAKER_KEEP = 1_000;
const BREAKER_KEEP_MS = 7 * 86_400_000;
export const MAX_FLEET_MINUTES = 24 * 60;

export const minuteKey = (minuteStartMs: number): string => `${PREFIX}:m:${minuteStartMs}`;

export interface BreakerChange {
  atMs: number;
  instance: string;
  state: string;
}

export interface FleetView {
  fromMs: number;
  toMs: number;
  /** Per UTC minute with any refusal, oldest first. */
  minutes: { minuteStartMs: number; kind: string; limit: string; count: number }[];
  /** Periods an instance's breaker was not closed (degraded mode), overlapping the window, oldest first. */
  degraded: { instance: string; fromMs: number; toMs: number | null; states: string[] }[];
}

export class FleetCounters {
  private counts = new Map<string, Map<string, number>>();
  private changes: BreakerChange[] = [];

  constructor(private readonly instance: string) {}

  /** Counts one refusal (denied, deferred, degraded-<policy>) of `limit` at `atMs`. */
  refusal(kind: string, limit: string, atMs: number): void {
    const key = minuteKey(atMs - (atMs % MINUTE_MS));
    let fields = this.counts.get(key);
    if (fields === undefined) this.counts.set(key, (fields = new Map<string, number>()));
    const field = `${kind}|${limit}`;
    fields.set(field, (fields.get(field) ?? 0) + 1);
  }

  /** Notes a breaker change of this instance. */
  breaker(state: string, atMs: number): void {
    this.changes.push({ atMs, instance: this.instance, state });
    if (this.changes.length > BREAKER_KEEP) this.changes = this.changes.slice(-BREAKER_KEEP);
  }

  /** Writes what moved in one MULTI; on failure keeps it and rethrows. */
  async flush(redis: DeciderRedis): Promise<void> {
    if (this.counts.size === 0 && this.changes.length === 0) return;
    const { counts, changes } = this;
    this.counts = new Map();
    this.changes = [];
    const multi = redis.multi();
    for (const [key, fields] of counts) {
      for (const [field, by] of fields) multi.hincrby(key, field, by);
      multi.pexpire(key, MINUTE_KEEP_MS);
    }
    if (changes.length > 0) {
      multi.rpush(BREAKER_KEY, ...changes.map((change) => JSON.stringify(change)));
      multi.ltrim(BREAKER_KEY, -BREAKER_KEEP, -1);
      multi.pexpire(BREAKER_KEY, BREAKER_KEEP_MS);
    }
    try {
      const replies = await multi.exec();
      if (replies === null || replies.some(([error]) => error !== null)) throw new Error('the fleet MULTI failed');
    } catch (error) {
      for (const [key, fields] of counts) {
        const now = this.counts.get(key) ?? new Map<string, number>();
        for (const [field, by] of fields) now.set(field, (now.get(field) ?? 0) + by);
        this.counts.set(key, now);
      }
      this.changes = [...changes, ...this.changes].slice(-BREAKER_KEEP);
      throw error;
    }
  }
}

/** Degraded periods from breaker changes (each instance's, in time order); open ones end null. */
export function degradedPeriods(changes: BreakerChange[], fromMs: number): FleetView['degraded'] {
  const periods: FleetView['degraded'] = [];
  const open = new Map<string, FleetView['degraded'][number]>();
  for (const change of [...changes].sort((a, b) => a.atMs - b.atMs)) {
    const current = open.get(change.instance);
    if (change.state === 'closed') {
      if (current !== undefined) {
        current.toMs = change.atMs;
        open.delete(change.instance);
      }
    } else if (current === undefined) {
      const period = { instance: change.instance, fromMs: change.atMs, toMs: null, states: [change.state] };
      periods.push(period);
      open.set(change.instance, period);
    } else if (current.states.at(-1) !== change.state) current.states.push(change.state);
  }
  return periods.filter((period) => period.toMs === null || period.toMs >= fromMs);
}

/** The last `minutes` minutes (this one included). @throws ValidationError, DependencyError `REDIS_UNAVAILABLE` */
export async function readFleet(redis: DeciderRedis, input: { minutes: number; nowMs: number }): Promise<FleetView> {
  if (!Number.isInteger(input.minutes) || input.minutes < 1 || input.minutes > MAX_FLEET_MINUTES)
    throw new ValidationError('INVALID_INPUT', `minutes must be an integer in 1..${MAX_FLEET_MINUTES}`);
  const minute = input.nowMs - (input.nowMs % MINUTE_MS);
  const starts = Array.from({ length: input.minutes }, (_, back) => minute - (input.minutes - 1 - back) * MINUTE_MS);
  const multi = redis.multi();
  for (const start of starts) multi.hgetall(minuteKey(start));
  multi.lrange(BREAKER_KEY, 0, -1);
  let replies: [Error | null, unknown][] | null;
  try {
    replies = await multi.exec();
  } catch (error) {
    throw new DependencyError('REDIS_UNAVAILABLE', 'Redis did not answer the fleet figures', { cause: error });
  }
  if (replies === null || replies.some(([error]) => error !== null))
    throw new DependencyError('REDIS_UNAVAILABLE', 'Redis did not answer the fleet figures');
  const minutes: FleetView['minutes'] = [];
  starts.forEach((minuteStartMs, index) => {
    const fields = (replies[index]?.[1] ?? {}) as Record<string, string>;
    for (const [field, count] of Object.entries(fields).sort(([a], [b]) => a.localeCompare(b))) {
      const cut = field.indexOf('|');
      minutes.push({ minuteStartMs, kind: field.slice(0, cut), limit: field.slice(cut + 1), count: Number(count) });
    }
  });
  const changes = ((replies[starts.length]?.[1] ?? []) as string[]).map((text) => JSON.parse(text) as BreakerChange);
  const fromMs = starts[0] ?? minute;
  return { fromMs, toMs: minute + MINUTE_MS, minutes, degraded: degradedPeriods(changes, fromMs) };
}
