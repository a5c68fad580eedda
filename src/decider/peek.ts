/**
 * Reading a tenant's limits without spending a unit (the tenant usage API).
 * The keys are those a zero-cost request would touch (`compileRequest`, so the
 * key layout lives only in keys.ts and compile.ts); their values are read in
 * one MULTI with Redis TIME (one slot: one shard's keys) and evaluated by the
 * decider's own model (`model/evaluate.ts`), so a peek reports what the next
 * request's decision would report before taking its cost. Nothing is written.
 */
import { DependencyError, InvariantError, parseEventId, type LimitId } from '../shared/index.js';
import { decodeBucketState } from './bucket-state.js';
import { compileRequest } from './compile.js';
import { evaluate, remainingWithoutTake } from './model/evaluate.js';
import { ALG, emptyModelState, type CompiledLimit, type ModelState } from './model/layout.js';
import { fnv1a32 } from './keys.js';
import type { DecideInput, LimitMode, LimitSpec } from './ports.js';
import type { DeciderRedis } from './redis.js';

/** One limit as a peek sees it. */
export interface PeekedLimit {
  id: LimitId;
  kind: LimitSpec['algorithm']['kind'];
  mode: LimitMode;
  /** Units (slots, for concurrency) a request could take now. */
  remaining: number;
  /** ms until the limit is fully restored (or its window or period ends). */
  resetMs: number;
  /** Period quotas: units counted in the current period (summed over a whale's parts); else null. */
  usedUnits: number | null;
  /** Period quotas: the limit (whole, over every part); else null. */
  limitUnits: number | null;
}

export interface PeekResult {
  /** Redis time of the read, ms. */
  nowMs: number;
  limits: PeekedLimit[];
  /** Cost admitted in the current billing period (the decider's admitted counter, every part). */
  admittedUnits: number;
  billingStartMs: number;
  billingEndMs: number;
}

/** What a peek needs: a request's identity and limits, without a cost or request id. */
export type PeekInput = Omit<DecideInput, 'requestId' | 'cost' | 'operation' | 'recordTtlMs' | 'isDeferrable'>;

/** A request id that lands on each part of a whale tenant (partOf = fnv1a32(id) mod subShards). */
function partRequestIds(subShards: number): string[] {
  const ids = new Map<number, string>();
  for (let index = 0; ids.size < subShards; index += 1) {
    if (index > 100_000) throw new InvariantError('no request id found for every part');
    const id = `peek-${index}`;
    const part = fnv1a32(id) % subShards;
    if (!ids.has(part)) ids.set(part, id);
  }
  return [...ids.values()];
}

type Reply = [Error | null, unknown][] | null;

/** Loads the values of one compiled request's limit keys into a model state; returns Redis time. */
function loadState(reply: Reply, limits: CompiledLimit[], state: ModelState): { nowMs: number; admitted: number } {
  if (reply === null) throw new DependencyError('REDIS_UNAVAILABLE', 'the peek transaction was aborted');
  const values = reply.map(([error, value]) => {
    if (error !== null) throw new DependencyError('REDIS_UNAVAILABLE', 'Redis did not answer the peek', { cause: error });
    return value;
  });
  const [time, admitted] = values as [[string, string], Buffer | null];
  const nowMs = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
  let at = 2;
  for (const limit of limits) {
    const raw = values[at] as Buffer | null;
    at += 1;
    if (limit.alg === ALG.periodQuota) {
      const next = values[at] as Buffer | null;
      at += 1;
      if (raw !== null) state.counters.set(limit.key, Number(raw.toString()));
      if (next !== null && limit.nextKey !== undefined) state.counters.set(limit.nextKey, Number(next.toString()));
    } else if (limit.alg === ALG.concurrency) {
      const flat = (raw as unknown as string[] | null) ?? [];
      const leases = new Map<string, number>();
      for (let index = 0; index + 1 < flat.length; index += 2) leases.set(String(flat[index]), Number(flat[index + 1]));
      state.leases.set(limit.key, leases);
    } else if (raw !== null) {
      if (limit.alg === ALG.tokenBucket) {
        const decoded = decodeBucketState('token-bucket', raw);
        if (decoded.kind === 'token-bucket') state.tb.set(limit.key, { t: decoded.tokens, ts: decoded.updatedAtMs, r: decoded.remainder });
      } else if (limit.alg === ALG.fixedWindow) {
        const decoded = decodeBucketState('fixed-window', raw);
        if (decoded.kind === 'fixed-window') state.fw.set(limit.key, { w: decoded.window, n: decoded.count });
      } else {
        const decoded = decodeBucketState('sliding-window', raw);
        if (decoded.kind === 'sliding-window') state.sw.set(limit.key, { w: decoded.window, c: decoded.current, p: decoded.previous });
      }
    }
  }
  return { nowMs, admitted: admitted === null ? 0 : Number(admitted.toString()) };
}

/**
 * Each limit's remaining, reset and (period quotas) used units, as the next request would see them
 * before its cost is taken. A whale tenant's parts are each read and summed (remaining of a part is
 * what a request landing on it could take; the sum is the tenant's total).
 * @throws ValidationError for bad input (as `decide` would)
 * @throws DependencyError `REDIS_UNAVAILABLE` when Redis does not answer
 */
export async function peekLimits(
  redis: DeciderRedis,
  input: PeekInput,
  options: { shardCount: number; localNowMs: number },
): Promise<PeekResult> {
  const ids = partRequestIds(input.subShards ?? 1);
  const parts = await Promise.all(
    ids.map(async (id) => {
      const compiled = compileRequest({ ...input, requestId: parseEventId(id), cost: 0, operation: 'peek' }, options);
      const { model, keys } = compiled;
      const multi = redis
        .multi()
        .time()
        .getBuffer(keys[2] as string);
      for (const limit of model.limits) {
        if (limit.alg === ALG.concurrency) multi.zrange(limit.key, '0', '-1', 'WITHSCORES');
        else multi.getBuffer(limit.key);
        if (limit.alg === ALG.periodQuota) multi.getBuffer(limit.nextKey ?? limit.key);
      }
      let reply: Reply;
      try {
        reply = await multi.exec();
      } catch (error) {
        throw new DependencyError('REDIS_UNAVAILABLE', 'Redis did not answer the peek', { cause: error });
      }
      const state = emptyModelState();
      const { nowMs, admitted } = loadState(reply, model.limits, state);
      const evaluations = model.limits.map((limit) => {
        const ev = evaluate(limit, { state, now: nowMs, cost: 0 });
        remainingWithoutTake(ev);
        return ev;
      });
      return { compiled, nowMs, admitted, evaluations };
    }),
  );
  const first = parts[0];
  if (first === undefined) throw new InvariantError('a peek reads at least one part');
  const limits = first.compiled.limitIds.map((id, index): PeekedLimit => {
    const kind = first.compiled.limitKinds[index] as LimitSpec['algorithm']['kind'];
    const isQuota = kind === 'period-quota';
    let remaining = 0;
    let resetMs = 0;
    let used = 0;
    let limitUnits = 0;
    for (const part of parts) {
      const ev = part.evaluations[index];
      if (ev === undefined) throw new InvariantError('a part has fewer limits than the plan');
      remaining += ev.remaining;
      resetMs = Math.max(resetMs, ev.reset);
      used += ev.used;
      limitUnits += ev.limit.p1;
    }
    return {
      id,
      kind,
      mode: first.compiled.modes[index] as LimitMode,
      remaining,
      resetMs,
      usedUnits: isQuota ? used : null,
      limitUnits: isQuota ? limitUnits : null,
    };
  });
  return {
    nowMs: first.nowMs,
    limits,
    admittedUnits: parts.reduce((sum, part) => sum + part.admitted, 0),
    billingStartMs: first.compiled.billingStartMs,
    billingEndMs: first.compiled.billingEndMs,
  };
}
