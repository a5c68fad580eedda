/**
 * The Redis implementation of the `Decider` port (`ports.ts`).
 *
 * Micro-batching: requests that arrive in the same event-loop turn, or while
 * earlier script calls are in flight, are sent together in the next call (no
 * timer: an idle decider sends at the end of the current turn),
 * each decided in order and atomic on its own. So throughput is bounded by
 * Redis work, not per-call round trips. A batch is one group: on a single
 * Redis every request (any shard), on Redis Cluster one shard (one slot).
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { DependencyError, InvariantError, ValidationError, type Clock, type LimitId } from '../shared/index.js';
import { compileRequest, type CompiledRequest } from './compile.js';
import { DECIDE_SCRIPT, encodeDecideCall, sendDecideCall, type ScriptSource } from './decide-command.js';
import type { RawDecision } from './model/limits.js';
import { Cluster, Pipeline } from 'ioredis';
import { RedisCallTimeout, loopIdleMs, timeCall, type CallTiming, type DeadlineOptions } from './loop-time.js';
import type { DecideInput, Decider, Decision, LimitMode, LimitSpec, LimitState, SettleInput, Warning } from './ports.js';
import type { DeciderRedis } from './redis.js';
import { isCommandTimeout, isLostConnection, isNotConnected, isReplyError, redisErrorPrefix, stalePeriodNowMs } from './redis-errors.js';
import { decodeSettle, mapDecideBatch, type SettleResult } from './replies.js';
import { compileSettle } from './settle-args.js';

/** Options of `RedisDecider`. */
export interface RedisDeciderOptions {
  shardCount: number;
  clock: Clock;
  /**
   * How long an admitted request's record is kept unless the request names its own
   * (`DecideInput.recordTtlMs`): retries within it return the first decision, settle and the
   * degraded-mode replay read it. Memory: ~184 B per admitted request for this long (MEMORY USAGE, 3 limits).
   * @default 900_000 (15 min)
   */
  recordTtlMs?: number;
  /**
   * Most requests sent in one script call. Smaller batches let Node and Redis overlap (two
   * calls in flight) and bound how long one call holds Redis (~3 ms at 64); measured: 64 gave
   * ~16.5k decisions/s where 256 gave ~12.9k on the same 2 cores. @default 64
   */
  maxBatchSize?: number;
  /**
   * Script calls in flight per batch group at once (they run in order on one
   * connection): 2 lets Node build the next batch while Redis runs one. @default 2
   */
  maxInFlightBatches?: number;
  /**
   * Durability beyond the primary's AOF: after each script call, `WAIT replicas timeoutMs`
   * on the same connection (pipelined, so on Redis Cluster the same node). The decision
   * stands either way and reports `replicasAcked`. Keep `timeoutMs` below the command timeout.
   * @default undefined (no WAIT)
   */
  waitForReplicas?: { replicas: number; timeoutMs: number } | undefined;
  /**
   * Redis' share of one call, ms: the call fails (`REDIS_UNAVAILABLE`) once the event loop has
   * been idle this long without its reply. Time this process spends busy does not count
   * (`loop-time.ts`). Undefined: only the connection's own command timeout applies.
   * @default undefined
   */
  timeoutMs?: number | undefined;
  /** With `timeoutMs`: a call fails after this much wall-clock time however busy the process is, ms. @default 1000 */
  maxWaitMs?: number;
  /** Told how each script call went (one event per call, one per lost connection): a breaker's input. */
  onCall?: (outcome: CallOutcome) => void;
  /** The decide script to call (measurement tools try a prototype of it). @default `lua/decide.lua` */
  decideScript?: ScriptSource;
}

/**
 * How one call to Redis went. `answered`: Redis replied (even with an error reply), taking
 * `timing.redisMs` of idle loop time. `failed`: a timeout of Redis' share (`timeout`), the wall-clock
 * cap reached (`wall-clock-cap`, with how much of it was Redis' share), a connection lost with calls
 * in flight (reported once for all of them), or Redis not reachable.
 */
export type CallOutcome =
  | { kind: 'answered'; timing: CallTiming }
  | { kind: 'failed'; cause: 'timeout' | 'wall-clock-cap'; timing: CallTiming }
  | { kind: 'failed'; cause: 'lost-connection' | 'unreachable' };

/** Why calls to Redis failed, as `CallOutcome` names them. */
export type CallFailureCause = Extract<CallOutcome, { kind: 'failed' }>['cause'];

const DEFAULTS = {
  decideScript: DECIDE_SCRIPT,
  recordTtlMs: 900_000,
  maxBatchSize: 64,
  maxInFlightBatches: 2,
  waitForReplicas: undefined,
  maxWaitMs: 1_000,
};

/** How long a call waits for a fresh connection after losing one, without `timeoutMs`, ms. */
const RECONNECT_WAIT_MS = 1_000;

interface Pending {
  input: DecideInput;
  compiled: CompiledRequest;
  /** The request's number of limits (what its reply must hold). */
  count: number;
  /** This call's token (unique in the process, the same when a batch whose reply was lost is sent again). */
  attempt: string;
  resolve: (decision: Decision) => void;
  reject: (error: unknown) => void;
}

/**
 * Maps a script reply to the public decision: one pass over the limits, each state built once, and the decision's
 * object built whole (no intermediate arrays, no spread copy; per decision this runs on the hot path).
 */
export function toDecision(raw: RawDecision, compiled: CompiledRequest): Decision {
  let rawLimits = raw.limits;
  if (rawLimits.length !== compiled.limitIds.length) {
    // A replay decided under another plan: its limit states do not describe these limits.
    if (!raw.isReplay || raw.kind > 1) throw new InvariantError('decide reply has the wrong number of limits');
    rawLimits = [];
  }
  const { limitIds, limitKinds, modes } = compiled;
  const limits = new Array<LimitState>(rawLimits.length);
  let shadowDenials: LimitId[] | undefined;
  for (let index = 0; index < rawLimits.length; index += 1) {
    const limit = rawLimits[index] as RawDecision['limits'][number];
    const state: LimitState = {
      id: limitIds[index] as LimitId,
      kind: limitKinds[index] as LimitSpec['algorithm']['kind'],
      mode: modes[index] as LimitMode,
      remaining: limit.remaining,
      resetMs: limit.resetMs,
      isExceeded: (limit.flags & 1) === 1,
      hasTaken: (limit.flags & 2) === 2,
      overage: limit.overage,
    };
    limits[index] = state;
    if (state.mode === 'shadow' && state.isExceeded) (shadowDenials ??= []).push(state.id);
  }
  const retryAfterMs = raw.retryAfterMs === -1 ? null : raw.retryAfterMs;
  if (raw.kind === 3 || raw.kind === 2) {
    const index = raw.limitIndex - 1;
    const limitId = limitIds[index];
    if (limitId === undefined) throw new InvariantError(`decide reply names limit ${raw.limitIndex} of ${limits.length}`);
    if (raw.kind === 2) return { kind: 'deferred', limitId, retryAfterMs, nowMs: raw.nowMs, limits };
    return { kind: 'denied', limitId, isQuota: limitKinds[index] === 'period-quota', retryAfterMs, nowMs: raw.nowMs, limits };
  }
  const usageId = compiled.requestId;
  const { streamId, nowMs, isReplay } = raw;
  if (raw.kind === 0) return { kind: 'allowed', usageId, streamId, nowMs, limits, shadowDenials: shadowDenials ?? [], isReplay };
  const warnings: Warning[] = [];
  rawLimits.forEach((limit, index) => {
    const state = limits[index] as LimitState;
    if (state.mode === 'soft' && state.isExceeded)
      warnings.push({ kind: 'soft-limit-exceeded', limitId: state.id, overage: limit.overage });
    if (limit.crossed > 0 && state.mode !== 'shadow')
      warnings.push({ kind: 'threshold-crossed', limitId: state.id, percent: limit.crossed });
  });
  return { kind: 'warned', warnings, usageId, streamId, nowMs, limits, shadowDenials: shadowDenials ?? [], isReplay };
}

/** Decider on Redis (single node or cluster): one EVALSHA per shard batch. */
export class RedisDecider implements Decider {
  private readonly options: Required<Omit<RedisDeciderOptions, 'waitForReplicas' | 'timeoutMs' | 'onCall'>> &
    Pick<RedisDeciderOptions, 'waitForReplicas' | 'timeoutMs' | 'onCall'>;
  private readonly queues = new Map<number, Pending[]>();
  private readonly inFlight = new Map<number, number>();
  private readonly scheduled = new Set<number>();
  private readonly isCluster: boolean;
  private readonly deadline: DeadlineOptions | undefined;
  /** Bumped when a lost connection is first seen: the calls lost with it count as one event. */
  private connectionGeneration = 0;
  private reconnecting: Promise<void> | undefined;
  /** Attempt tokens: a prefix random per decider, then a counter (decide.lua tells a lost call's own record by it). */
  private readonly attemptPrefix = `${randomBytes(6).toString('base64url')}.`;
  private attempts = 0;

  constructor(
    private readonly redis: DeciderRedis,
    options: RedisDeciderOptions,
  ) {
    this.options = { ...DEFAULTS, ...options };
    this.isCluster = redis instanceof Cluster;
    this.deadline = options.timeoutMs === undefined ? undefined : { timeoutMs: options.timeoutMs, maxWaitMs: this.options.maxWaitMs };
  }

  decide(input: DecideInput): Promise<Decision> {
    let compiled: CompiledRequest;
    try {
      compiled = compileRequest(input, { shardCount: this.options.shardCount, localNowMs: this.options.clock.nowMs() });
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new ValidationError('INVALID_INPUT', String(error)));
    }
    const group = this.isCluster ? compiled.shard : 0;
    return new Promise<Decision>((resolve, reject) => {
      let queue = this.queues.get(group);
      if (queue === undefined) {
        queue = [];
        this.queues.set(group, queue);
      }
      this.attempts += 1;
      const attempt = `${this.attemptPrefix}${this.attempts.toString(36)}`;
      queue.push({ input, compiled, count: compiled.limitIds.length, attempt, resolve, reject });
      if ((this.inFlight.get(group) ?? 0) < this.options.maxInFlightBatches && !this.scheduled.has(group)) {
        // sent at the end of this event-loop turn (no timer): the requests that sockets delivered in
        // the same turn share one script call
        this.scheduled.add(group);
        setImmediate(() => {
          this.scheduled.delete(group);
          void this.flush(group);
        });
      }
    });
  }

  async settle(input: SettleInput): Promise<SettleResult> {
    const { keys, args } = compileSettle(input, { shardCount: this.options.shardCount });
    // settle.lua answers a second settle with the first: a call lost with its connection is retried once
    const reply = await this.withRetry(
      () => this.call(() => this.redis.tgSettle(keys.length, ...keys, ...args)),
      (error) => {
        const prefix = redisErrorPrefix(error);
        if (prefix === 'ERR_ARG' || prefix === 'ERR_SCRIPT')
          return new InvariantError('settle.lua rejected its arguments', { cause: error });
        return new DependencyError('REDIS_UNAVAILABLE', 'Redis did not settle', { cause: error });
      },
    );
    return decodeSettle(reply);
  }

  /**
   * One call to Redis, timed by Redis' share (`timeoutMs` of idle loop time) and reported to
   * `onCall`. A lost connection is reported once for every call in flight on it.
   */
  private async call<T>(send: () => Promise<T>): Promise<T> {
    const generation = this.connectionGeneration;
    const idleAtStart = loopIdleMs();
    const wallAtStart = performance.now();
    try {
      const { value, timing } = await timeCall(send, this.deadline);
      this.options.onCall?.({ kind: 'answered', timing });
      return value;
    } catch (error) {
      if (isReplyError(error)) this.options.onCall?.({ kind: 'answered', timing: { redisMs: 0, wallMs: 0 } });
      else if (error instanceof RedisCallTimeout)
        this.options.onCall?.({ kind: 'failed', cause: error.isWallClockCap ? 'wall-clock-cap' : 'timeout', timing: error.timing });
      // the connection's command timeout is the same wall-clock cap, reached by ioredis' timer before ours
      else if (isCommandTimeout(error)) {
        const capped = new RedisCallTimeout({ redisMs: loopIdleMs() - idleAtStart, wallMs: performance.now() - wallAtStart }, true);
        this.options.onCall?.({ kind: 'failed', cause: 'wall-clock-cap', timing: capped.timing });
        throw capped;
      }
      // never sent for want of a connection: `withRetry` waits for one and reports how that went
      else if (!isLostConnection(error) && !isNotConnected(error)) this.options.onCall?.({ kind: 'failed', cause: 'unreachable' });
      else if (generation === this.connectionGeneration) {
        this.connectionGeneration += 1;
        this.options.onCall?.({ kind: 'failed', cause: 'lost-connection' });
      }
      throw error;
    }
  }

  /**
   * Runs `attempt`; when its connection was lost with the call in flight (Redis may or may not
   * have run it), or was being re-established so the call was never sent, waits for a fresh
   * connection and runs it once more. Errors are mapped by `toError`.
   */
  private async withRetry<T>(attempt: () => Promise<T>, toError: (error: unknown) => Error): Promise<T> {
    try {
      return await attempt();
    } catch (error) {
      if (!isLostConnection(error) && !isNotConnected(error)) throw toError(error);
    }
    await this.freshConnection();
    try {
      return await attempt();
    } catch (error) {
      if (isNotConnected(error)) this.options.onCall?.({ kind: 'failed', cause: 'unreachable' });
      throw toError(error);
    }
  }

  /**
   * Resolves once the connection is ready again (ioredis reconnects by itself), within Redis'
   * share of time like a call; on Redis Cluster at once (the retry finds its node's connection).
   * @throws DependencyError `REDIS_UNAVAILABLE` when no connection comes back in time
   */
  private freshConnection(): Promise<void> {
    const redis = this.redis;
    // `ready` with a dead socket: the connection was cut and ioredis has not seen it close yet
    if (redis instanceof Cluster || (redis.status === 'ready' && redis.stream.writable)) return Promise.resolve();
    if (redis.status === 'end') {
      this.options.onCall?.({ kind: 'failed', cause: 'unreachable' });
      return Promise.reject(new DependencyError('REDIS_UNAVAILABLE', 'the Redis connection was closed'));
    }
    this.reconnecting ??= (async () => {
      let onReady: () => void = () => undefined;
      const ready = new Promise<void>((resolve) => {
        onReady = resolve;
        redis.once('ready', onReady);
      });
      try {
        await timeCall(() => ready, this.deadline ?? { timeoutMs: RECONNECT_WAIT_MS, maxWaitMs: RECONNECT_WAIT_MS });
      } catch (error) {
        this.options.onCall?.({ kind: 'failed', cause: 'unreachable' });
        throw new DependencyError('REDIS_UNAVAILABLE', 'no fresh connection to Redis in time', { cause: error });
      } finally {
        redis.off('ready', onReady);
        this.reconnecting = undefined;
      }
    })();
    return this.reconnecting;
  }

  private async flush(group: number): Promise<void> {
    const queue = this.queues.get(group);
    if (queue === undefined || queue.length === 0) {
      if ((this.inFlight.get(group) ?? 0) === 0) this.queues.delete(group);
      return;
    }
    const batch = queue.splice(0, this.options.maxBatchSize);
    this.inFlight.set(group, (this.inFlight.get(group) ?? 0) + 1);
    try {
      const decisions = await this.run(batch);
      batch.forEach((pending, index) => pending.resolve(decisions[index] as Decision));
    } catch (error) {
      for (const pending of batch) pending.reject(error);
    } finally {
      const left = (this.inFlight.get(group) ?? 1) - 1;
      if (left === 0) this.inFlight.delete(group);
      else this.inFlight.set(group, left);
      void this.flush(group);
    }
  }

  private async run(batch: Pending[]): Promise<Decision[]> {
    // a retry sends the same attempt tokens: a request the lost call decided answers as its own (isReplay 0)
    const { reply, replicasAcked } = await this.withRetry(
      () => this.send(batch),
      (error) => decideError(error),
    );
    // decoded into one reused decision, each mapped at once to the public one (no intermediate object per request)
    const decisions = mapDecideBatch(reply, batch, (raw, index) => toDecision(raw, (batch[index] as Pending).compiled));
    if (replicasAcked !== undefined) {
      for (const decision of decisions)
        if (decision.kind === 'allowed' || decision.kind === 'warned') decision.replicasAcked = replicasAcked;
    }
    return decisions;
  }

  /** One script call (and its WAIT); a stale-period answer renames the periods from Redis' clock and calls once more. */
  private async send(batch: Pending[], isStaleRetry = false): Promise<{ reply: unknown; replicasAcked: number | undefined }> {
    const script = this.options.decideScript;
    const call = encodeDecideCall({
      requests: batch.map((pending) => pending.compiled),
      defaultRecordTtlMs: this.options.recordTtlMs,
      attempts: batch.map((pending) => pending.attempt),
      script,
    });
    const redis = this.redis;
    try {
      const wait = this.options.waitForReplicas;
      if (wait === undefined)
        return { reply: await this.call(() => sendDecideCall({ via: redis, client: redis, call, script })), replicasAcked: undefined };
      return await this.call(async () => {
        const pipeline = redis.pipeline();
        if (!(pipeline instanceof Pipeline)) throw new InvariantError('ioredis made a pipeline that is not a Pipeline');
        void sendDecideCall({ via: pipeline, client: redis, call, script }).catch(() => undefined); // read from exec()'s results
        const results = await pipeline.wait(wait.replicas, wait.timeoutMs).exec();
        const [decided, waited] = results ?? [];
        if (decided?.[0]) throw decided[0];
        return { reply: decided?.[1], replicasAcked: typeof waited?.[1] === 'number' ? waited[1] : 0 };
      });
    } catch (error) {
      const redisNowMs = stalePeriodNowMs(error);
      if (redisNowMs === undefined || isStaleRetry) throw error;
      // The local clock named the wrong periods: rename them from Redis' clock, once.
      for (const pending of batch) {
        pending.compiled = compileRequest(pending.input, { shardCount: this.options.shardCount, localNowMs: redisNowMs });
        pending.count = pending.compiled.limitIds.length;
      }
      return this.send(batch, true);
    }
  }
}

/** The decider's error for a failed decide call: a script that rejected its arguments is a bug, anything else Redis'. */
function decideError(error: unknown): Error {
  const prefix = redisErrorPrefix(error);
  if (prefix === 'ERR_ARG' || prefix === 'ERR_SCRIPT' || prefix === 'ERR_STALE_PERIOD') {
    return new InvariantError('decide.lua rejected its arguments', { cause: error });
  }
  if (error instanceof RedisCallTimeout) return error;
  return new DependencyError('REDIS_UNAVAILABLE', 'Redis did not decide', { cause: error });
}
