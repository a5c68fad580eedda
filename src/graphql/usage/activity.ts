/**
 * What the API process notes of each decision, off the request path: denials per tenant and limit (the usage
 * API's "recent denials"), shadow would-denials per plan rollout (`tollgate plans rollout status`) and each key's
 * last use (`keys list`). A request only bumps counters in memory (`record`, O(limits)); a timer flushes them
 * to Redis every `flushMs` with one command per counter that moved (HINCRBY / HSET), so the hot path makes no
 * Redis call of its own.
 *
 * Exactness: every decision this process made is counted once its flush lands. A flush that fails is retried
 * with the next one (the counts are kept); a reply lost after Redis applied it counts it twice; a process that
 * dies (SIGKILL) loses at most its last `flushMs` of counts (SIGTERM flushes). Last use is ± `flushMs` (and
 * instances may overwrite each other's newer value with an older one seen within the same interval).
 *
 * Keys (none is a decider key; each holds one tenant's or one rollout's data, so a cluster is fine):
 *   `tollgate:denials:v1:{<tenant>}:<hourStartMs>`  hash  <limitId> → denials in that UTC hour (expires after 25 h)
 *   `tollgate:denials:v1:{<tenant>}:recent`         list  the last 10 denials as JSON { atMs, limitId, operation }
 *   `tollgate:rollout:v1:<planId>:<version>`         hash  <limitId> → would-deny count; <limitId>#<hourStartMs> per hour
 *   `tollgate:lastused:v1:<tenant>`                  hash  <keyId> → epoch ms of its last decided request
 * and, in a MULTI of their own each, the top consumers' rankings (`rankings.ts`) and the fleet-wide refusals and
 * breaker changes (`fleet.ts`).
 */
import { hostname } from 'node:os';
import type { DecideInput, DeciderRedis, Decision, LimitState, SettleInput } from '../../decider/index.js';
import { DependencyError, type Logger } from '../../shared/index.js';
import { FleetCounters } from './fleet.js';
import { UsageRankings } from './rankings.js';

export const HOUR_MS = 3_600_000;
const DENIALS_TTL_MS = 25 * HOUR_MS;
const ROLLOUT_COUNTS_TTL_MS = 30 * 24 * HOUR_MS;
/** Recent denials kept per tenant. */
export const RECENT_DENIALS = 10;

export const denialsKey = (tenant: string, hourStartMs: number): string => `tollgate:denials:v1:{${tenant}}:${hourStartMs}`;
export const recentDenialsKey = (tenant: string): string => `tollgate:denials:v1:{${tenant}}:recent`;
export const rolloutCountsKey = (planId: string, version: number): string => `tollgate:rollout:v1:${planId}:${version}`;
export const lastUsedKey = (tenant: string): string => `tollgate:lastused:v1:${tenant}`;

/** A shadow limit of a rollout: `<limitId>-sv<version>` (see `shadowLimitId`). */
const SHADOW_ID = /^(.+)-sv(\d+)$/;

/** The id a rollout's shadow copy of `limitId` runs under: its state never mixes with the enforced limit's. */
export function shadowLimitId(limitId: string, version: number): string {
  return `${limitId}-sv${version}`;
}

/** The limit and version a shadow id names, or undefined for any other id. */
export function parseShadowLimitId(id: string): { limitId: string; version: number } | undefined {
  const match = SHADOW_ID.exec(id);
  return match === null ? undefined : { limitId: match[1] ?? '', version: Number(match[2]) };
}

/**
 * Whether a limit is a rollout's shadow copy (mode `shadow`, id `<limit>-sv<version>`): served beside the enforced
 * plan for the operator only, never shown to a tenant. A plan's own limit ids cannot end in `-sv<digits>` (refused at
 * apply, `reservedLimitIdProblems`), so no limit of a plan is taken for one.
 */
export function isRolloutShadow(limit: { id: string; mode: string }): boolean {
  return limit.mode === 'shadow' && SHADOW_ID.test(limit.id);
}

/** The problems of a plan whose own limit ids take the rollouts' shadow suffix (`-sv<digits>`), one per limit. */
export function reservedLimitIdProblems(limits: readonly { id: string }[]): string[] {
  const problems: string[] = [];
  limits.forEach((limit, index) => {
    if (SHADOW_ID.test(limit.id))
      problems.push(`plan.limits.${index}.id: ${limit.id} ends in -sv<digits>, which names the shadow copies of rollouts`);
  });
  return problems;
}

const tenantViews = new WeakMap<object, object>();

/**
 * The plan as its tenants see it: without a running rollout's shadow copies (the same object when it has none, and
 * the same filtered object for the same plan on every call: the decider's caches key off the limits array).
 */
export function tenantVisiblePlan<P extends { limits: readonly { id: string; mode: string }[] }>(plan: P): P {
  if (!plan.limits.some(isRolloutShadow)) return plan;
  let view = tenantViews.get(plan) as P | undefined;
  if (view === undefined) {
    view = { ...plan, limits: plan.limits.filter((limit) => !isRolloutShadow(limit)) };
    tenantViews.set(plan, view);
  }
  return view;
}

/**
 * A running rollout as the recorder needs it (`LiveConfig.rolloutOf`): which served limits are the new version's
 * shadow copies (with the mode the new version gives them), which enforced limits it keeps unchanged, and which it
 * removes. Changed limits are neither kept nor removed: their shadow copy stands for them.
 */
export interface RolloutShape {
  version: number;
  /** Shadow id → the limit's id and its mode in the new version. */
  shadows: ReadonlyMap<string, { limitId: string; mode: string }>;
  unchanged: ReadonlySet<string>;
  removed: ReadonlySet<string>;
}

/** Rollout counter fields besides the shadow limits' (`~` is outside the limit id alphabet: no id collides). */
export const WOULD_ADMIT_FIELD = '~admit';
export const removedField = (limitId: string): string => `~removed:${limitId}`;

const refuses = (mode: string): boolean => mode === 'hard' || mode === 'defer';

/**
 * Whether the new version of a rollout would have admitted a request the enforced version refused (denied or
 * deferred): no limit it keeps unchanged and no shadow copy that refuses in the new version did not fit. Judged
 * against the states as they were (the shadow copies take nothing from a refused request).
 */
export function wouldAdmit(shape: RolloutShape, states: readonly LimitState[]): boolean {
  for (const state of states) {
    if (!state.isExceeded) continue;
    const shadow = shape.shadows.get(state.id);
    if (shadow !== undefined ? refuses(shadow.mode) : shape.unchanged.has(state.id) && refuses(state.mode)) return false;
  }
  return true;
}

/** One decision, as the edge hands it over (`onDecided`). */
export interface DecidedActivity {
  tenant: string;
  keyId: string;
  planId: string;
  operation: string;
  decision: Decision;
  /** What was decided: its cost and billing period count admitted units into the top consumers' rankings. */
  input?: Pick<DecideInput, 'cost' | 'billingPeriod'>;
}

/** A settlement that moved the decider's counters: the settle input and `refund` = requested − actual (negative: an overrun). */
export type SettledInput = Pick<SettleInput, 'tenant' | 'decidedAtMs' | 'billingPeriod'>;

export interface ActivityRecorderOptions {
  redis: DeciderRedis;
  logger: Logger;
  /** @default 1000 */
  flushMs?: number;
  /** @default Date.now */
  nowMs?: () => number;
  /** This process in the fleet's breaker changes. @default `<hostname>:<pid>` */
  instance?: string;
  /** The running rollout of a plan, as this process serves it (absent: shadow denials counted by their ids alone). */
  rolloutOf?: (planId: string) => RolloutShape | undefined;
}

const hourOf = (ms: number): number => ms - (ms % HOUR_MS);

function bump(map: Map<string, Map<string, number>>, key: string, field: string, by = 1): void {
  let fields = map.get(key);
  if (fields === undefined) map.set(key, (fields = new Map<string, number>()));
  fields.set(field, (fields.get(field) ?? 0) + by);
}

export class ActivityRecorder {
  private counters = new Map<string, Map<string, number>>();
  private expiries = new Map<string, number>();
  private recent = new Map<string, string[]>();
  private lastUsed = new Map<string, Map<string, number>>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private readonly nowMs: () => number;
  private readonly rankings = new UsageRankings();
  private readonly fleet: FleetCounters;

  constructor(private readonly options: ActivityRecorderOptions) {
    this.nowMs = options.nowMs ?? Date.now;
    this.fleet = new FleetCounters(options.instance ?? `${hostname()}:${process.pid}`);
  }

  /** Notes a change of this process's decider breaker (closed, open, half-open), stamped now. Never throws. */
  breakerChanged(state: string): void {
    this.fleet.breaker(state, this.nowMs());
  }

  /** Notes a settlement that moved the counters (the rankings count admitted units net of refunds). Never throws. */
  settled(input: SettledInput, refund: number): void {
    this.rankings.add({ tenant: input.tenant, units: -refund, atMs: input.decidedAtMs, billingPeriod: input.billingPeriod });
  }

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.options.flushMs ?? 1_000);
    this.timer.unref();
  }

  /** Notes one decision (in memory only). Never throws. */
  record(activity: DecidedActivity): void {
    const { tenant, decision } = activity;
    const nowMs = decision.nowMs;
    let users = this.lastUsed.get(tenant);
    if (users === undefined) this.lastUsed.set(tenant, (users = new Map<string, number>()));
    users.set(activity.keyId, this.nowMs());
    this.count(activity);
    if (decision.kind === 'denied' || decision.kind === 'deferred') this.recordRefusedInRollout(activity);
    if (decision.kind === 'denied') {
      const key = denialsKey(tenant, hourOf(nowMs));
      bump(this.counters, key, decision.limitId);
      this.expiries.set(key, DENIALS_TTL_MS);
      const list = this.recent.get(tenant) ?? [];
      list.push(JSON.stringify({ atMs: nowMs, limitId: decision.limitId, operation: activity.operation }));
      this.recent.set(tenant, list.slice(-RECENT_DENIALS));
      return;
    }
    if ((decision.kind === 'allowed' || decision.kind === 'warned') && decision.shadowDenials.length > 0 && !decision.isReplay) {
      const shape = this.options.rolloutOf?.(activity.planId);
      for (const id of decision.shadowDenials) {
        const shadow = parseShadowLimitId(id);
        if (shadow === undefined) continue;
        // a limit the new version makes soft never refuses: it would have warned, not denied
        const newMode = shape?.shadows.get(id)?.mode;
        if (newMode !== undefined && !refuses(newMode)) continue;
        const key = rolloutCountsKey(activity.planId, shadow.version);
        bump(this.counters, key, shadow.limitId);
        bump(this.counters, key, `${shadow.limitId}#${hourOf(nowMs)}`);
        this.expiries.set(key, ROLLOUT_COUNTS_TTL_MS);
      }
    }
  }

  /** The rankings (admitted units) and the fleet's refusals by limit. */
  private count(activity: DecidedActivity): void {
    const { decision, input } = activity;
    const isAdmitted =
      ((decision.kind === 'allowed' || decision.kind === 'warned') && !decision.isReplay) ||
      (decision.kind === 'degraded' && decision.isAdmitted);
    if (isAdmitted && input !== undefined)
      this.rankings.add({ tenant: activity.tenant, units: input.cost, atMs: decision.nowMs, billingPeriod: input.billingPeriod });
    if (decision.kind === 'denied' || decision.kind === 'deferred') this.fleet.refusal(decision.kind, decision.limitId, decision.nowMs);
    if (decision.kind === 'degraded') this.fleet.refusal(`degraded-${decision.policy}`, 'none', decision.nowMs);
  }

  /**
   * A request the enforced version refused during a rollout: counted when the new version would have admitted it
   * (`~admit`, and per UTC hour), and per removed limit among those that refused it (`~removed:<limitId>`).
   */
  private recordRefusedInRollout(activity: DecidedActivity): void {
    const { decision } = activity;
    const shape = this.options.rolloutOf?.(activity.planId);
    if (shape === undefined || (decision.kind !== 'denied' && decision.kind !== 'deferred') || !wouldAdmit(shape, decision.limits)) return;
    const key = rolloutCountsKey(activity.planId, shape.version);
    bump(this.counters, key, WOULD_ADMIT_FIELD);
    bump(this.counters, key, `${WOULD_ADMIT_FIELD}#${hourOf(decision.nowMs)}`);
    for (const state of decision.limits) {
      if (state.isExceeded && refuses(state.mode) && shape.removed.has(state.id)) bump(this.counters, key, removedField(state.id));
    }
    this.expiries.set(key, ROLLOUT_COUNTS_TTL_MS);
  }

  /** Writes what moved since the last flush (one flush at a time); what fails is kept for the next. */
  async flush(): Promise<void> {
    if (this.flushing !== undefined) return this.flushing;
    this.flushing = this.write().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  /** Stops the timer and flushes what is left. */
  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    await this.flush();
  }

  private async write(): Promise<void> {
    const counters = this.counters;
    const expiries = this.expiries;
    const recent = this.recent;
    const lastUsed = this.lastUsed;
    this.counters = new Map();
    this.expiries = new Map();
    this.recent = new Map();
    this.lastUsed = new Map();
    const { redis } = this.options;
    const writes: Promise<unknown>[] = [];
    for (const [key, fields] of counters) {
      const bumps = [...fields].map(([field, by]) =>
        redis.hincrby(key, field, by).then(
          () => fields.delete(field),
          () => undefined,
        ),
      );
      writes.push(Promise.all(bumps).then(() => redis.pexpire(key, expiries.get(key) ?? DENIALS_TTL_MS)));
    }
    for (const [tenant, entries] of recent) {
      const key = recentDenialsKey(tenant);
      writes.push(
        redis
          .multi()
          .rpush(key, ...entries)
          .ltrim(key, -RECENT_DENIALS, -1)
          .pexpire(key, DENIALS_TTL_MS)
          .exec()
          .then(() => recent.delete(tenant)),
      );
    }
    for (const [tenant, users] of lastUsed) {
      writes.push(redis.hset(lastUsedKey(tenant), Object.fromEntries(users)).then(() => lastUsed.delete(tenant)));
    }
    writes.push(this.rankings.flush(redis, this.nowMs()), this.fleet.flush(redis));
    const results = await Promise.allSettled(writes);
    const failed = results.filter((result) => result.status === 'rejected').length;
    // what did not land is added back (a later decision's counts add to it)
    for (const [key, fields] of counters) for (const [field, by] of fields) bump(this.counters, key, field, by);
    for (const [key, fields] of counters) if (fields.size > 0) this.expiries.set(key, expiries.get(key) ?? DENIALS_TTL_MS);
    for (const [tenant, entries] of recent)
      this.recent.set(tenant, [...entries, ...(this.recent.get(tenant) ?? [])].slice(-RECENT_DENIALS));
    for (const [tenant, users] of lastUsed) {
      const now = this.lastUsed.get(tenant) ?? new Map<string, number>();
      for (const [keyId, atMs] of users) if (!now.has(keyId)) now.set(keyId, atMs);
      this.lastUsed.set(tenant, now);
    }
    if (failed > 0) this.options.logger.warn({ failed }, 'activity counters not flushed; kept for the next flush');
  }
}

/** Each key's last use, epoch ms by key id. @throws DependencyError */
export async function readLastUsed(redis: DeciderRedis, tenant: string): Promise<Map<string, number>> {
  let fields: Record<string, string>;
  try {
    fields = await redis.hgetall(lastUsedKey(tenant));
  } catch (error) {
    throw new DependencyError('REDIS_UNAVAILABLE', 'Redis did not answer the keys last use', { cause: error });
  }
  return new Map(Object.entries(fields).map(([keyId, atMs]) => [keyId, Number(atMs)]));
}

/** A tenant's denials by limit: this UTC hour, and this hour plus the 23 before it; and the last few. */
export interface DenialsView {
  byLimit: { limitId: string; thisHour: number; last24Hours: number }[];
  recent: { atMs: number; limitId: string; operation: string }[];
}

/** Reads a tenant's denial counters (one round trip: every key carries the tenant's hash tag). @throws DependencyError */
export async function readDenials(redis: DeciderRedis, tenant: string, nowMs: number): Promise<DenialsView> {
  const hours = Array.from({ length: 24 }, (_, back) => hourOf(nowMs) - back * HOUR_MS);
  const multi = redis.multi();
  for (const hour of hours) multi.hgetall(denialsKey(tenant, hour));
  multi.lrange(recentDenialsKey(tenant), 0, -1);
  let replies: [Error | null, unknown][] | null;
  try {
    replies = await multi.exec();
  } catch (error) {
    throw new DependencyError('REDIS_UNAVAILABLE', 'Redis did not answer the denial counters', { cause: error });
  }
  if (replies === null || replies.some(([error]) => error !== null))
    throw new DependencyError('REDIS_UNAVAILABLE', 'Redis did not answer the denial counters');
  const byLimit = new Map<string, { limitId: string; thisHour: number; last24Hours: number }>();
  hours.forEach((_, index) => {
    const fields = (replies[index]?.[1] ?? {}) as Record<string, string>;
    for (const [limitId, count] of Object.entries(fields)) {
      const entry = byLimit.get(limitId) ?? { limitId, thisHour: 0, last24Hours: 0 };
      entry.last24Hours += Number(count);
      if (index === 0) entry.thisHour += Number(count);
      byLimit.set(limitId, entry);
    }
  });
  const recent = ((replies[hours.length]?.[1] ?? []) as string[])
    .map((text) => JSON.parse(text) as { atMs: number; limitId: string; operation: string })
    .reverse();
  return { byLimit: [...byLimit.values()].sort((a, b) => a.limitId.localeCompare(b.limitId)), recent };
}
