/**
 * The pure model of the decider: `decideModel` computes, for one request,
 * exactly the reply `lua/decide.lua` returns, given the same state and the same
 * Redis time, and `settleModel` does what `lua/settle.lua` does. Pure (no I/O);
 * the differential test holds the model and the scripts together. The shapes
 * it shares with the scripts are in `layout.ts` (re-exported here); one limit's
 * arithmetic is in `evaluate.ts` and `refund.ts`.
 *
 * Units: every quantity is an integer number of cost units; times are ms.
 */
import { evaluate, remainingWithoutTake, take, type Evaluation } from './evaluate.js';
import { ALG, MODE, type ModelRequest, type ModelState, type RawDecision, type RawSettlement } from './layout.js';
import { refundLimit } from './refund.js';

export {
  ALG,
  MODE,
  emptyModelState,
  type AlgCode,
  type CompiledLimit,
  type ModeCode,
  type ModelRequest,
  type ModelState,
  type RawDecision,
  type RawSettlement,
} from './layout.js';

/**
 * Decides one request at Redis time `now`, mutating `state` exactly as the
 * script mutates Redis, and returns the script's reply. A stored record
 * (an admitted request seen before) is returned flagged as a replay.
 */
export function decideModel(state: ModelState, request: ModelRequest, now: number): RawDecision {
  const stored = state.records.get(request.recordKey);
  if (stored !== undefined) return { ...stored, isReplay: true };
  const context = { state, now, cost: request.cost, requestId: request.requestId };
  const evs = request.limits.map((lim) => evaluate(lim, context));
  let denyIdx = 0;
  let deferIdx = 0;
  let retry = 0;
  let isWarned = false;
  request.limits.forEach((lim, index) => {
    const ev = evs[index] as Evaluation;
    if (!ev.fits) {
      if (lim.mode === MODE.hard || lim.mode === MODE.defer) {
        if (lim.mode === MODE.hard && denyIdx === 0) denyIdx = index + 1;
        if (lim.mode === MODE.defer && deferIdx === 0) deferIdx = index + 1;
        if (retry !== -1) retry = ev.retry === -1 ? -1 : Math.max(retry, ev.retry);
      } else if (lim.mode === MODE.soft) {
        isWarned = true;
      }
    }
    if (ev.crossed > 0 && lim.mode !== MODE.shadow) isWarned = true;
  });
  let kind: RawDecision['kind'];
  let limitIndex = 0;
  if (denyIdx > 0) {
    kind = 3;
    limitIndex = denyIdx;
  } else if (deferIdx > 0) {
    kind = 2;
    limitIndex = deferIdx;
  } else {
    kind = isWarned ? 1 : 0;
    retry = 0;
  }
  const isAdmitted = kind <= 1;
  request.limits.forEach((lim, index) => {
    const ev = evs[index] as Evaluation;
    if (isAdmitted && (lim.mode !== MODE.shadow || ev.fits)) take(ev, context);
    else remainingWithoutTake(ev);
  });
  const reply: RawDecision = {
    kind,
    nowMs: now,
    limitIndex,
    retryAfterMs: retry,
    streamId: isAdmitted ? 'model' : '',
    isReplay: false,
    limits: request.limits.map((lim, index) => {
      const ev = evs[index] as Evaluation;
      const took = isAdmitted && (lim.mode !== MODE.shadow || ev.fits);
      return {
        remaining: ev.remaining,
        resetMs: ev.reset,
        flags: (ev.fits ? 0 : 1) + (took ? 2 : 0),
        overage: ev.overage,
        crossed: ev.crossed,
      };
    }),
  };
  if (isAdmitted) {
    state.records.set(request.recordKey, reply);
    state.events += 1;
  }
  return reply;
}

/**
 * Settles an admitted request at Redis time `now` exactly as `lua/settle.lua`
 * does to the limits' state: refunds `requested − actual` to every limit that
 * took it (or takes the overrun), releases concurrency leases, once per
 * request. (The admitted counter is not modelled: the audit tests cover it.)
 */
export function settleModel(state: ModelState, request: ModelRequest, actual: number, now: number): RawSettlement {
  const decision = state.records.get(request.recordKey);
  if (decision === undefined) return { status: 0, nowMs: now, refund: 0 };
  const earlier = state.settlements.get(request.recordKey);
  if (earlier !== undefined) return { ...earlier, status: 2 };
  const decidedAt = decision.nowMs;
  const refund = request.cost - actual;
  request.limits.forEach((lim, index) => {
    const took = decision.limits.length === request.limits.length && ((decision.limits[index]?.flags ?? 0) & 2) === 2;
    if (lim.alg === ALG.concurrency) state.leases.get(lim.key)?.delete(request.requestId);
    if (!took || refund === 0) return;
    refundLimit(lim, { state, now, decidedAt, refund });
  });
  const settlement: RawSettlement = { status: 1, nowMs: now, refund };
  state.settlements.set(request.recordKey, settlement);
  state.events += 1;
  return settlement;
}
