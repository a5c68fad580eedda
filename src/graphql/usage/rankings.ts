/**
 * Top consumers (the admin API's `topConsumers`, issue 18): tenants ranked by admitted units in their current
 * billing period (read in O(log n + N) at any number of tenants) and in the last 24 hours (a union of 24 hourly sets,
 * offered while they hold at most 20,000 tenant-hours: a bigger union would stall the decider's Redis).
 *
 * What it counts: the units the decider admits, as its per-tenant admitted counter counts them (the figure the
 * usage API answers as `period.usedUnits`): each admitted decision's cost (a degraded-mode admission too: it is
 * counted on replay), less the refund of its settlement (plus an overrun), in the period and the UTC hour of the
 * decision. Not ledgered units: the ranking is live (the ledger trails by the pump's lag) and the ledger has no
 * cross-tenant order without a scan; the audit compares the two per tenant.
 *
 * How: the API process adds each decision to maps in memory (`ActivityRecorder.record`, O(1)); its one-second flush
 * writes what moved in ONE MULTI (ZINCRBY per tenant moved, INCRBY of the totals, expiries), so the request path
 * makes no Redis call for it and a flush is all or nothing. Exactness: every admitted unit is counted once its flush
 * lands; a failed flush is retried whole with the next; a MULTI whose reply is lost after Redis applied it counts
 * twice (rare; the audit's figure per tenant is the exact one); a SIGKILLed process loses its last second (SIGTERM
 * flushes). A settlement refund of a period that already ended is dropped by the decider, not here (rare: a request
 * running across a period's end).
 *
 * Keys: every key carries the hash tag `{top}` (one slot: a MULTI and a ZUNIONSTORE work on a cluster):
 *   `tollgate:top:v1:{top}:p:<startMs>:<endMs>`   zset   tenant → units admitted in that billing period
 *   `tollgate:top:v1:{top}:pt:<startMs>:<endMs>`  string total of the period (for the shares)
 *   `tollgate:top:v1:{top}:periods`               zset   `<startMs>:<endMs>` → endMs: the periods in use
 *   `tollgate:top:v1:{top}:h:<hourStartMs>`       zset   tenant → units admitted in that UTC hour (expires after 25 h)
 *   `tollgate:top:v1:{top}:ht:<hourStartMs>`      string total of the hour
 *   `tollgate:top:v1:{top}:u:...`                 zset   a union (several periods, or 24 hours), kept 10 s; refused
 *                                                        above 20,000 entries (it would block the decider's Redis)
 * Period keys expire 35 days after their period's end.
 */
import { createHash } from 'node:crypto';
import { periodAt, type DeciderRedis, type PeriodSpec } from '../../decider/index.js';
import { DependencyError, ValidationError } from '../../shared/index.js';

const PREFIX = 'tollgate:top:v1:{top}';
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const PERIOD_KEEP_MS = 35 * DAY_MS;
const HOUR_KEEP_MS = 25 * HOUR_MS;
/** How long a union of several sets is reused, ms (the 24-hour ranking is at most this stale). */
const UNION_TTL_MS = 10_000;
export const MAX_TOP_CONSUMERS = 100;
/** Most entries a union (24 hours, or several period calendars) may merge: ~10 ms of Redis, at most once per 10 s. */
const MAX_UNION_MEMBERS = 20_000;

export const periodRankKey = (startMs: number, endMs: number): string => `${PREFIX}:p:${startMs}:${endMs}`;
const periodTotalKey = (startMs: number, endMs: number): string => `${PREFIX}:pt:${startMs}:${endMs}`;
const PERIODS_KEY = `${PREFIX}:periods`;
export const hourRankKey = (hourStartMs: number): string => `${PREFIX}:h:${hourStartMs}`;
const hourTotalKey = (hourStartMs: number): string => `${PREFIX}:ht:${hourStartMs}`;
const unionKey = (parts: string[]): string => `${PREFIX}:u:${createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 24)}`;

export type RankingWindow = 'PERIOD' | 'LAST_24_HOURS';

export interface TopConsumersView {
  window: RankingWindow;
  fromMs: number;
  toMs: number;
  /** Units admitted to every tenant in the window. */
  totalUnits: number;
  /** Tenants with units in the window. */
  tenants: number;
  items: { tenant: string; units: number }[];
}

/** What moved since the last flush, in memory. */
export class UsageRankings {
  private ranks = new Map<string, Map<string, number>>();
  private totals = new Map<string, number>();
  /** key → absolute expiry, epoch ms */
  private expiries = new Map<string, number>();
  /** `<startMs>:<endMs>` of each period seen */
  private periods = new Set<string>();

  /** Adds `units` (negative: a refund) to the tenant in the period and the hour of `atMs`. */
  add(input: { tenant: string; units: number; atMs: number; billingPeriod: PeriodSpec }): void {
    if (input.units === 0 || !Number.isSafeInteger(input.units)) return;
    const period = periodAt(input.billingPeriod, input.atMs);
    const hour = input.atMs - (input.atMs % HOUR_MS);
    this.bump(
      periodRankKey(period.startMs, period.endMs),
      periodTotalKey(period.startMs, period.endMs),
      input,
      period.endMs + PERIOD_KEEP_MS,
    );
    this.bump(hourRankKey(hour), hourTotalKey(hour), input, hour + HOUR_KEEP_MS);
    this.periods.add(`${period.startMs}:${period.endMs}`);
  }

  private bump(rank: string, total: string, input: { tenant: string; units: number }, expiresAtMs: number): void {
    let tenants = this.ranks.get(rank);
    if (tenants === undefined) this.ranks.set(rank, (tenants = new Map<string, number>()));
    tenants.set(input.tenant, (tenants.get(input.tenant) ?? 0) + input.units);
    this.totals.set(total, (this.totals.get(total) ?? 0) + input.units);
    this.expiries.set(rank, expiresAtMs);
    this.expiries.set(total, expiresAtMs);
  }

  /** Writes what moved in one MULTI; on failure keeps it (added to what moves meanwhile) and rethrows. */
  async flush(redis: DeciderRedis, nowMs: number): Promise<void> {
    if (this.ranks.size === 0) return;
    const { ranks, totals, expiries, periods } = this;
    this.ranks = new Map();
    this.totals = new Map();
    this.expiries = new Map();
    this.periods = new Set();
    const multi = redis.multi();
    for (const [key, tenants] of ranks) for (const [tenant, units] of tenants) if (units !== 0) multi.zincrby(key, units, tenant);
    for (const [key, units] of totals) if (units !== 0) multi.incrby(key, units);
    for (const [key, atMs] of expiries) multi.pexpireat(key, atMs);
    for (const period of periods) multi.zadd(PERIODS_KEY, Number(period.split(':')[1]), period);
    multi.zremrangebyscore(PERIODS_KEY, '-inf', nowMs - PERIOD_KEEP_MS);
    multi.pexpire(PERIODS_KEY, PERIOD_KEEP_MS * 2);
    try {
      const replies = await multi.exec();
      if (replies === null || replies.some(([error]) => error !== null)) throw new Error('the rankings MULTI failed');
    } catch (error) {
      for (const [key, tenants] of ranks) for (const [tenant, units] of tenants) this.readd(key, tenant, units);
      for (const [key, units] of totals) this.totals.set(key, (this.totals.get(key) ?? 0) + units);
      for (const [key, atMs] of expiries) this.expiries.set(key, Math.max(atMs, this.expiries.get(key) ?? 0));
      for (const period of periods) this.periods.add(period);
      throw error;
    }
  }

  private readd(key: string, tenant: string, units: number): void {
    let tenants = this.ranks.get(key);
    if (tenants === undefined) this.ranks.set(key, (tenants = new Map<string, number>()));
    tenants.set(tenant, (tenants.get(tenant) ?? 0) + units);
  }
}

const fail = (error?: unknown): DependencyError =>
  new DependencyError('REDIS_UNAVAILABLE', 'Redis did not answer the usage rankings', error === undefined ? {} : { cause: error });

async function execOrFail(multi: ReturnType<DeciderRedis['multi']>): Promise<unknown[]> {
  let replies: [Error | null, unknown][] | null;
  try {
    replies = await multi.exec();
  } catch (error) {
    throw fail(error);
  }
  if (replies === null || replies.some(([error]) => error !== null)) throw fail(replies?.find(([error]) => error !== null)?.[0]);
  return replies.map(([, value]) => value);
}

/** The sets and totals a window reads, and its bounds. */
async function windowSources(
  redis: DeciderRedis,
  window: RankingWindow,
  nowMs: number,
): Promise<{ sets: string[]; totals: string[]; fromMs: number; toMs: number }> {
  if (window === 'LAST_24_HOURS') {
    const hour = nowMs - (nowMs % HOUR_MS);
    const hours = Array.from({ length: 24 }, (_, back) => hour - back * HOUR_MS);
    return { sets: hours.map(hourRankKey), totals: hours.map(hourTotalKey), fromMs: hour - 23 * HOUR_MS, toMs: hour + HOUR_MS };
  }
  let members: string[];
  try {
    members = await redis.zrangebyscore(PERIODS_KEY, `(${nowMs}`, '+inf');
  } catch (error) {
    throw fail(error);
  }
  const current = members
    .map((member) => member.split(':').map(Number) as [number, number])
    .filter(([startMs]) => startMs <= nowMs)
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return {
    sets: current.map(([startMs, endMs]) => periodRankKey(startMs, endMs)),
    totals: current.map(([startMs, endMs]) => periodTotalKey(startMs, endMs)),
    fromMs: Math.min(nowMs, ...current.map(([startMs]) => startMs)),
    toMs: Math.max(nowMs, ...current.map(([, endMs]) => endMs)),
  };
}

/**
 * Stores the union of `sets` under `source` for 10 s. A union is O(members) and blocks the decider's Redis meanwhile,
 * so it is refused above MAX_UNION_MEMBERS (the PERIOD window at one calendar is no union: O(log n) at any size).
 * @throws ValidationError, DependencyError
 */
async function mergeBounded(redis: DeciderRedis, input: { source: string; sets: string[]; window: RankingWindow }): Promise<void> {
  const cards = (await execOrFail(input.sets.reduce((multi, key) => multi.zcard(key), redis.multi()))) as number[];
  const members = cards.reduce((sum, count) => sum + Number(count), 0);
  if (members > MAX_UNION_MEMBERS)
    throw new ValidationError(
      'INVALID_INPUT',
      `the ${input.window} ranking would merge ${members} tenant entries (more than ${MAX_UNION_MEMBERS}); use the PERIOD window`,
    );
  await execOrFail(
    redis
      .multi()
      .zunionstore(input.source, input.sets.length, ...input.sets)
      .pexpire(input.source, UNION_TTL_MS),
  );
}

/**
 * The `first` tenants with the most units in the window, and the window's total. PERIOD: each tenant's current
 * billing period (tenants of different period calendars are ranked together). LAST_24_HOURS: this UTC hour and the
 * 23 before it (a union reused for 10 s). @throws ValidationError, DependencyError `REDIS_UNAVAILABLE`
 */
export async function readTopConsumers(
  redis: DeciderRedis,
  input: { window: RankingWindow; first: number; nowMs: number },
): Promise<TopConsumersView> {
  if (!Number.isInteger(input.first) || input.first < 1 || input.first > MAX_TOP_CONSUMERS)
    throw new ValidationError('INVALID_INPUT', `first must be an integer in 1..${MAX_TOP_CONSUMERS}`);
  const { sets, totals, fromMs, toMs } = await windowSources(redis, input.window, input.nowMs);
  const empty: TopConsumersView = { window: input.window, fromMs, toMs, totalUnits: 0, tenants: 0, items: [] };
  if (sets.length === 0) return empty;
  let source = sets[0] as string;
  if (sets.length > 1) {
    source = unionKey(sets);
    let exists: number;
    try {
      exists = await redis.exists(source);
    } catch (error) {
      throw fail(error);
    }
    if (exists === 0) await mergeBounded(redis, { source, sets, window: input.window });
  }
  const [ranked, count, sums] = (await execOrFail(
    redis
      .multi()
      .zrevrangebyscore(source, '+inf', '(0', 'WITHSCORES', 'LIMIT', 0, input.first)
      .zcount(source, '(0', '+inf')
      .mget(...totals),
  )) as [string[], number, (string | null)[]];
  const items: { tenant: string; units: number }[] = [];
  for (let at = 0; at + 1 < ranked.length; at += 2) items.push({ tenant: ranked[at] as string, units: Number(ranked[at + 1]) });
  const totalUnits = sums.reduce((sum, value) => sum + Number(value ?? 0), 0);
  return { ...empty, totalUnits, tenants: Number(count), items };
}
