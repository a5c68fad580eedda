/**
 * One limit's part of a settlement, as `lua/settle.lua` does it: `refund` units
 * (requested − actual) go back to the limit that took them, or, when negative,
 * the overrun is taken. Refunds never lift a bucket above its capacity or a
 * counter below 0; a refund to a window or period that has ended is dropped.
 * Pure (no I/O).
 */
import { evaluate } from './evaluate.js';
import { ALG, type CompiledLimit, type ModelState } from './layout.js';

/** A settlement of one request: its state, Redis time now and at the decision (ms), and the refund (units, may be negative). */
export interface RefundContext {
  state: ModelState;
  now: number;
  decidedAt: number;
  refund: number;
}

function refundTokenBucket(lim: CompiledLimit, { state, now, refund }: RefundContext): void {
  const ev = evaluate(lim, { state, now, cost: 0 });
  let tokens = ev.tokens + refund;
  let r = ev.r;
  if (tokens >= lim.p1) {
    tokens = lim.p1;
    r = 0;
  }
  state.tb.set(lim.key, { t: tokens, ts: now, r });
}

function refundWindow(lim: CompiledLimit, { state, now, decidedAt, refund }: RefundContext): void {
  const win = lim.p2;
  const wNow = Math.floor(now / win);
  const wThen = Math.floor(decidedAt / win);
  const isSliding = lim.alg === ALG.slidingWindow;
  const stored = isSliding ? state.sw.get(lim.key) : state.fw.get(lim.key);
  const storedW = stored?.w;
  let count = stored === undefined ? 0 : 'c' in stored ? stored.c : stored.n;
  let prev = stored !== undefined && 'p' in stored ? stored.p : 0;
  if (refund > 0) {
    // back to the window the decision counted in, if it is still stored (current or, sliding, previous)
    if (storedW === wThen) count = Math.max(0, count - refund);
    else if (isSliding && storedW === wThen + 1) prev = Math.max(0, prev - refund);
    else return;
    if (isSliding) state.sw.set(lim.key, { w: storedW, c: count, p: prev });
    else state.fw.set(lim.key, { w: storedW, n: count });
  } else {
    const over = -refund;
    if (storedW === wNow) count += over;
    else {
      prev = isSliding && storedW === wNow - 1 ? count : 0;
      count = over;
    }
    if (isSliding) state.sw.set(lim.key, { w: wNow, c: count, p: prev });
    else state.fw.set(lim.key, { w: wNow, n: count });
  }
}

function refundPeriodQuota(lim: CompiledLimit, { state, now, decidedAt, refund }: RefundContext): void {
  if (refund > 0) {
    const keyThen = decidedAt >= lim.p3 ? (lim.nextKey ?? '') : lim.key;
    const used = state.counters.get(keyThen) ?? 0;
    const back = Math.min(refund, used);
    if (back > 0) state.counters.set(keyThen, used - back);
  } else {
    const keyNow = now >= lim.p3 ? (lim.nextKey ?? '') : lim.key;
    state.counters.set(keyNow, (state.counters.get(keyNow) ?? 0) - refund);
  }
}

/** Applies a non-zero refund to one limit that took the request's cost (concurrency leases are released by the caller). */
export function refundLimit(lim: CompiledLimit, settlement: RefundContext): void {
  switch (lim.alg) {
    case ALG.tokenBucket:
      refundTokenBucket(lim, settlement);
      break;
    case ALG.fixedWindow:
    case ALG.slidingWindow:
      refundWindow(lim, settlement);
      break;
    case ALG.periodQuota:
      refundPeriodQuota(lim, settlement);
      break;
    case ALG.concurrency:
      break;
  }
}
