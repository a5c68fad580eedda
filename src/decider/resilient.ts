/**
 * A Decider that keeps the API up when Redis is sick (DESIGN §2, "degraded").
 * Calls go through a circuit breaker; when Redis fails, times out or the
 * breaker is open, the request's policy decides (the strictest
 * `onDeciderDown` among its limits: closed > local > open):
 * - `closed`: refused (the edge answers 503 LIMITER_UNAVAILABLE);
 * - `local`: an in-process backstop runs the same algorithms (the pure model)
 *   with each limit divided by the number of healthy instances and capped by a
 *   hard ceiling, on the local clock;
 * - `open`: admitted.
 * Every degraded admission (and its settlement) is written to the spool before
 * the caller hears of it, and replayed into the stream, deduplicated, once
 * Redis answers again: degraded traffic is billed exactly once. Replay runs
 * when the breaker closes and, once `startReplays` is called, at once (a
 * restarted process's spool) and every `everyMs` while entries wait. A spool
 * that cannot be written (its disk gone or full) loses the entry: the decision
 * stands, the loss is logged as an error and counted (`spoolStats().lost`).
 */
import { DependencyError, OverloadedError, type Clock, type EventId, type Logger } from '../shared/index.js';
import { CircuitBreaker, type BreakerOptions, type BreakerState } from './breaker.js';
import { compileRequest } from './compile.js';
import { RedisDecider, type CallFailureCause, type CallOutcome } from './decider.js';
import { RedisCallTimeout } from './loop-time.js';
import { ALG, decideModel, emptyModelState, type CompiledLimit, type ModelState } from './model/limits.js';
import { periodAt } from './model/period.js';
import type { DecideInput, Decider, Decision, OnDeciderDown, SettleInput } from './ports.js';
import type { DeciderRedis } from './redis.js';
import type { SettleResult } from './replies.js';
import type { FileSpool, ReplayResult, SpoolEntry } from './spool.js';
import { appendUsage } from './usage-log.js';

export interface BackstopOptions {
  /**
   * Healthy API instances sharing the limits; each backstop gets limit / instances (a token bucket's refill rate
   * too). @default () => 1
   */
  instances?: () => number;
  /** Hard ceiling on any backstop limit's capacity, in units. @default 1000 */
  ceilingUnits?: number;
}

export interface ResilientDeciderOptions {
  shardCount: number;
  clock: Clock;
  logger: Logger;
  spool: FileSpool;
  breaker?: BreakerOptions;
  backstop?: BackstopOptions;
  /** See RedisDeciderOptions.recordTtlMs. @default 15 min */
  recordTtlMs?: number;
  /** See RedisDeciderOptions.waitForReplicas. */
  waitForReplicas?: { replicas: number; timeoutMs: number } | undefined;
  /**
   * A call fails once Redis has had `redisShareMs` of it (and, unless `breaker.latencyBudgetMs` says otherwise, is
   * slow past half of it) (idle event-loop time; time this process is busy does not
   * count) or after `maxWaitMs` of wall-clock time (RedisDeciderOptions.timeoutMs, maxWaitMs). Undefined: only the
   * connection's command timeout applies.
   */
  timeouts?: { redisShareMs: number; maxWaitMs: number } | undefined;
  random?: () => number;
}

const MAX_TRACKED_DEGRADED = 100_000;
/** Spool write failures are logged at most once per this many ms (each is counted). */
const LOST_LOG_EVERY_MS = 1_000;

/** The spool as `/metrics` and `/ready` show it. */
export interface SpoolReport {
  entries: number;
  /** Age of the oldest waiting entry, seconds (0 when none waits). */
  oldestAgeSeconds: number;
  isWritable: boolean;
  /** Entries, and admitted units among them, that could not be spooled since start: never billed. */
  lost: { entries: number; units: number };
}

const STRICTNESS: Record<OnDeciderDown, number> = { open: 0, local: 1, closed: 2 };

function policyOf(input: DecideInput): OnDeciderDown {
  let policy: OnDeciderDown = 'open';
  for (const limit of input.limits) if (STRICTNESS[limit.onDeciderDown] > STRICTNESS[policy]) policy = limit.onDeciderDown;
  return policy;
}

export class ResilientDecider implements Decider {
  readonly breaker: CircuitBreaker;
  private readonly inner: RedisDecider;
  private readonly backstop: ModelState = emptyModelState();
  /** Requests admitted while degraded whose settlement is still to come (bounded, oldest dropped). */
  private readonly degradedRequests = new Set<string>();
  private replaying: Promise<ReplayResult> | undefined;
  private replayTimer: NodeJS.Timeout | undefined;
  private readonly lost = { entries: 0, units: 0, loggedAtMs: -Infinity };
  private readonly failedCalls: Record<CallFailureCause, number> = {
    timeout: 0,
    'wall-clock-cap': 0,
    'lost-connection': 0,
    unreachable: 0,
  };

  constructor(
    private readonly redis: DeciderRedis,
    private readonly options: ResilientDeciderOptions,
  ) {
    this.inner = new RedisDecider(redis, {
      shardCount: options.shardCount,
      clock: options.clock,
      ...(options.recordTtlMs === undefined ? {} : { recordTtlMs: options.recordTtlMs }),
      waitForReplicas: options.waitForReplicas,
      timeoutMs: options.timeouts?.redisShareMs,
      ...(options.timeouts === undefined ? {} : { maxWaitMs: options.timeouts.maxWaitMs }),
      // The breaker hears of Redis once per call (and once per lost connection), never once per request.
      onCall: (outcome: CallOutcome) => this.heard(outcome),
    });
    // Without its own latency budget, a call is slow when Redis took over half its share.
    const breaker = {
      ...(options.timeouts === undefined ? {} : { latencyBudgetMs: options.timeouts.redisShareMs / 2 }),
      ...options.breaker,
    };
    this.breaker = new CircuitBreaker(options.clock, breaker, options.random ?? Math.random);
    this.breaker.onChange((state: BreakerState) => {
      options.logger.warn({ breaker: state }, 'decider breaker changed state');
      if (state === 'closed') this.replayIfWaiting();
    });
  }

  /**
   * Replays what the spool holds now (a restarted process's degraded usage) and then every `everyMs` while entries
   * wait and the connection to Redis is up. A replay that fails (Redis still down) keeps every entry not applied for the
   * next one. Idempotent; the timer does not keep the process alive.
   */
  startReplays({ everyMs }: { everyMs: number }): void {
    this.replayIfWaiting();
    this.replayTimer ??= setInterval(() => this.replayIfWaiting(), everyMs);
    this.replayTimer.unref();
  }

  stopReplays(): void {
    clearInterval(this.replayTimer);
    this.replayTimer = undefined;
  }

  /** Script calls to Redis that failed since start, by cause (each failed call degrades the decisions it carried). */
  callFailures(): Readonly<Record<CallFailureCause, number>> {
    return this.failedCalls;
  }

  private heard(outcome: CallOutcome): void {
    if (outcome.kind === 'failed') this.failedCalls[outcome.cause] += 1;
    this.breaker.heard(outcome);
  }

  /** What waits in the spool, and what could not be spooled. */
  spoolStats(): SpoolReport {
    const { entries, oldestAtMs } = this.options.spool.stats;
    return {
      entries,
      oldestAgeSeconds: oldestAtMs === undefined ? 0 : Math.max(0, Math.round((Date.now() - oldestAtMs) / 1_000)),
      isWritable: this.options.spool.isWritable(),
      lost: { entries: this.lost.entries, units: this.lost.units },
    };
  }

  private replayIfWaiting(): void {
    // Not the breaker's state: with no traffic an open breaker never probes, and the spool would wait for a request.
    // A connection not ready fails the first entry at once (no offline queue), so an attempt during an outage is cheap.
    if (this.options.spool.size === 0 || this.redis.status !== 'ready') return;
    this.replaySpool().catch((error: unknown) => {
      this.options.logger.warn(
        { code: 'SPOOL_REPLAY_FAILED', waiting: this.options.spool.size, err: error instanceof Error ? error.message : String(error) },
        'spool replay stopped; the rest waits for the next one',
      );
    });
  }

  /**
   * Writes one entry to the spool; when the spool cannot be written the entry is lost: logged (at most once a
   * second, with the running totals) and counted, never thrown at the caller, whose decision stands.
   */
  private async spoolOrCount(entry: SpoolEntry, units: number): Promise<void> {
    try {
      await this.options.spool.appendDurably(entry);
    } catch (error) {
      this.lost.entries += 1;
      this.lost.units += units;
      const nowMs = Date.now();
      if (nowMs - this.lost.loggedAtMs < LOST_LOG_EVERY_MS) return;
      this.lost.loggedAtMs = nowMs;
      this.options.logger.error(
        {
          code: 'SPOOL_UNAVAILABLE',
          lostEntries: this.lost.entries,
          lostUnits: this.lost.units,
          err: error instanceof Error ? error.message : String(error),
        },
        'degraded usage could not be spooled: these units will never be billed',
      );
    }
  }

  async decide(input: DecideInput): Promise<Decision> {
    if (!this.breaker.allow()) {
      return this.degrade(input, { reason: new DependencyError('REDIS_UNAVAILABLE', 'decider breaker is open'), wasSent: false });
    }
    const outcome = await this.withoutThrowing(() => this.inner.decide(input));
    if (outcome.isOk) return outcome.value;
    const { error } = outcome;
    if (error instanceof RedisCallTimeout && error.isWallClockCap && this.breaker.wasProcessBusy(error.timing)) {
      // This process, not Redis, kept the answer waiting past the cap: shed (the client retries shortly), never
      // degrade (an `open` policy would admit past the limit because the process is busy). Redis may have decided
      // it: a void settles it at cost 0 once replayed, so a refused request is never billed.
      await this.spoolOrCount({ kind: 'void', input: { ...input }, decidedAtMs: this.options.clock.nowMs() }, 0);
      throw new OverloadedError("this API instance was too busy to read the limiter's answer in time; retry shortly");
    }
    return this.degrade(input, { reason: error, wasSent: true });
  }

  async settle(input: SettleInput): Promise<SettleResult> {
    const key = `${input.tenant}/${input.requestId}`;
    if (!this.degradedRequests.has(key) && this.breaker.allow()) {
      const outcome = await this.withoutThrowing(() => this.inner.settle(input));
      if (outcome.isOk) return outcome.value;
    }
    this.degradedRequests.delete(key);
    // The refund cannot reach Redis' buckets now; billing stays exact through the spool.
    const refund = input.cost - input.actual;
    await this.spoolEvent(input, {
      eventId: `${input.requestId}.settled`,
      recordedAs: 'settlement',
      admittedDelta: -refund,
      periodAtMs: input.decidedAtMs,
      fields: { type: 'usage.settled.v1', requested: String(input.cost), actual: String(input.actual), refund: String(refund) },
    });
    return { status: 'settled', nowMs: this.options.clock.nowMs(), streamId: '', refund };
  }

  /**
   * Runs a call the breaker allowed; dependency failures become values. The breaker itself hears
   * from the inner decider (`onCall`); a call that never reached Redis frees its probe slot.
   */
  private async withoutThrowing<T>(call: () => Promise<T>): Promise<{ isOk: true; value: T } | { isOk: false; error: DependencyError }> {
    try {
      return { isOk: true, value: await call() };
    } catch (error) {
      if (!(error instanceof DependencyError)) {
        this.breaker.abandon();
        throw error;
      }
      return { isOk: false, error };
    }
  }

  /**
   * Replays the spool into the streams (deduplicated by event id and by the
   * decider's own records). Concurrent calls share one replay.
   */
  replaySpool(): Promise<ReplayResult> {
    this.replaying ??= this.options.spool
      .replay(async (entry) => {
        if (entry.kind === 'void') {
          const input = entry.input as unknown as DecideInput;
          const result = await this.inner.settle({ ...input, actual: 0, decidedAtMs: entry.decidedAtMs });
          return result.status === 'settled' ? 'appended' : 'skipped';
        }
        const result = await appendUsage(this.redis, {
          tenant: entry.tenant as DecideInput['tenant'],
          eventId: entry.eventId as EventId,
          fields: { id: entry.eventId, ...entry.fields },
          shardCount: this.options.shardCount,
          recorded: { requestId: entry.requestId as EventId, as: entry.recordedAs },
          admitted: { periodStartMs: entry.periodStartMs, delta: entry.admittedDelta },
          subShards: entry.subShards ?? 1,
        });
        return result.isNew ? 'appended' : 'skipped';
      })
      .then((result) => {
        this.options.logger.info({ ...result }, 'spool replayed');
        return result;
      })
      .finally(() => {
        this.replaying = undefined;
      });
    return this.replaying;
  }

  /**
   * Answers by the request's `onDeciderDown` policy. `wasSent`: whether the request reached
   * Redis (it may have run there after all); a refusal of such a request is spooled as a void.
   */
  private async degrade(input: DecideInput, { reason, wasSent }: { reason: DependencyError; wasSent: boolean }): Promise<Decision> {
    const policy = policyOf(input);
    const nowMs = this.options.clock.nowMs();
    const refuse = async (retryAfterMs: number | null): Promise<Decision> => {
      if (wasSent) await this.spoolOrCount({ kind: 'void', input: { ...input }, decidedAtMs: nowMs }, 0);
      return { kind: 'degraded', policy, isAdmitted: false, usageId: null, retryAfterMs, nowMs, reason };
    };
    if (policy === 'closed') return refuse(null);
    if (policy === 'local') {
      const compiled = compileRequest(input, { shardCount: this.options.shardCount, localNowMs: nowMs });
      const divisor = Math.max(1, this.options.backstop?.instances?.() ?? 1);
      const ceiling = this.options.backstop?.ceilingUnits ?? 1_000;
      const model = compiled.model;
      const scaled: CompiledLimit[] = model.limits.map((limit) => ({
        ...limit,
        // hard in the backstop whatever the mode: it exists to bound what passes
        mode: 1,
        p1: Math.max(1, Math.min(ceiling, Math.floor(limit.p1 / divisor))),
        // a token bucket refills at rate / instances too (its refill period stretched, exact in integers)
        ...(limit.alg === ALG.tokenBucket ? { p3: Math.min(Number.MAX_SAFE_INTEGER, limit.p3 * divisor) } : {}),
      }));
      const raw = decideModel(this.backstop, { ...model, limits: scaled }, nowMs);
      if (raw.kind > 1) return refuse(raw.retryAfterMs === -1 ? null : raw.retryAfterMs);
    }
    // the backstop took its tokens above, synchronously (no other decision between); the entry is on disk before the answer
    await this.spoolEvent(input, {
      eventId: input.requestId,
      recordedAs: 'decision',
      admittedDelta: input.cost,
      periodAtMs: nowMs,
      fields: { type: 'usage.degraded.v1', cost: String(input.cost) },
    });
    this.degradedRequests.add(`${input.tenant}/${input.requestId}`);
    if (this.degradedRequests.size > MAX_TRACKED_DEGRADED) {
      const oldest = this.degradedRequests.values().next().value;
      if (oldest !== undefined) this.degradedRequests.delete(oldest);
    }
    return { kind: 'degraded', policy, isAdmitted: true, usageId: input.requestId, retryAfterMs: null, nowMs, reason };
  }

  private spoolEvent(
    input: DecideInput,
    event: {
      eventId: string;
      recordedAs: 'decision' | 'settlement';
      admittedDelta: number;
      periodAtMs: number;
      fields: Record<string, string>;
    },
  ): Promise<void> {
    const periodStartMs = periodAt(input.billingPeriod, event.periodAtMs).startMs;
    return this.spoolOrCount(
      {
        kind: 'event',
        tenant: input.tenant,
        eventId: event.eventId,
        requestId: input.requestId,
        recordedAs: event.recordedAs,
        periodStartMs,
        admittedDelta: event.admittedDelta,
        ...(input.subShards === undefined || input.subShards === 1 ? {} : { subShards: input.subShards }),
        fields: {
          tenant: input.tenant,
          key: input.keyId,
          op: input.operation,
          pv: String(input.policyVersion),
          bp: String(periodStartMs),
          ...event.fields,
        },
      },
      // a lost refund over-bills; only admitted units count as lost (unbilled)
      Math.max(0, event.admittedDelta),
    );
  }
}
