/**
 * One limit, one request, as `lua/decide.lua` does it: `evaluate` reads the
 * limit's state at Redis time and says whether the cost fits (and when it
 * would); `take` writes what an admitted request takes; `remainingWithoutTake`
 * reports a limit the request did not take from. Pure (no I/O).
 *
 * Units: cost units and ms; every division is an integer one, as in the script.
 */
import { ALG, type CompiledLimit, type ModelState } from './layout.js';

const ceilDiv = (a: number, b: number): number => Math.floor((a + b - 1) / b);

/** What evaluating a limit found: the verdict, then the algorithm state read (kept for the take). */
export interface Evaluation {
  /** The limit evaluated. */
  limit: CompiledLimit;
  fits: boolean;
  remaining: number;
  reset: number;
  retry: number;
  overage: number;
  crossed: number;
  tokens: number;
  r: number;
  w: number;
  n: number;
  cur: number;
  prev: number;
  key: string;
  used: number;
  periodEnd: number;
  held: number;
}

/** The request a limit is evaluated for: the state it reads, Redis time (ms) and the cost (units). */
export interface EvaluationContext {
  state: ModelState;
  now: number;
  cost: number;
}

function blank(limit: CompiledLimit, key = limit.key): Evaluation {
  return {
    limit,
    fits: true,
    remaining: 0,
    reset: 0,
    retry: 0,
    overage: 0,
    crossed: 0,
    tokens: 0,
    r: 0,
    w: 0,
    n: 0,
    cur: 0,
    prev: 0,
    key,
    used: 0,
    periodEnd: 0,
    held: 0,
  };
}

/** Denies a cost above the whole limit for ever (retry −1), else when it does not fit now, with `retry`. */
function verdict(ev: Evaluation, check: { isAboveLimit: boolean; isOver: boolean; retry: () => number }): void {
  if (check.isAboveLimit) {
    ev.fits = false;
    ev.retry = -1;
  } else if (check.isOver) {
    ev.fits = false;
    ev.retry = check.retry();
  }
}

function evaluateTokenBucket(lim: CompiledLimit, { state, now, cost }: EvaluationContext): Evaluation {
  const ev = blank(lim);
  const [cap, rate, per] = [lim.p1, lim.p2, lim.p3];
  const stored = state.tb.get(lim.key);
  let tokens = cap;
  let r = 0;
  if (stored !== undefined) {
    tokens = stored.t;
    r = stored.r;
    let elapsed = Math.max(0, now - stored.ts);
    const fullMs = ceilDiv((cap - tokens) * per, rate) + per;
    if (elapsed > fullMs) elapsed = fullMs;
    const acc = elapsed * rate + r;
    tokens += Math.floor(acc / per);
    r = acc % per;
    if (tokens >= cap) {
      tokens = cap;
      r = 0;
    }
  }
  ev.tokens = tokens;
  ev.r = r;
  verdict(ev, { isAboveLimit: cost > cap, isOver: cost > tokens, retry: () => ceilDiv((cost - tokens) * per - r, rate) });
  ev.overage = cost > tokens ? cost - tokens : 0;
  return ev;
}

function evaluateFixedWindow(lim: CompiledLimit, { state, now, cost }: EvaluationContext): Evaluation {
  const ev = blank(lim);
  const [limit, win] = [lim.p1, lim.p2];
  const w = Math.floor(now / win);
  const stored = state.fw.get(lim.key);
  const n = stored !== undefined && stored.w === w ? stored.n : 0;
  ev.w = w;
  ev.n = n;
  ev.reset = (w + 1) * win - now;
  verdict(ev, { isAboveLimit: cost > limit, isOver: n + cost > limit, retry: () => ev.reset });
  ev.overage = n + cost > limit ? Math.min(cost, n + cost - limit) : 0;
  return ev;
}

function evaluateSlidingWindow(lim: CompiledLimit, { state, now, cost }: EvaluationContext): Evaluation {
  const ev = blank(lim);
  const [limit, win] = [lim.p1, lim.p2];
  const w = Math.floor(now / win);
  const e = now - w * win;
  const stored = state.sw.get(lim.key);
  let cur = 0;
  let prev = 0;
  if (stored !== undefined) {
    if (stored.w === w) {
      cur = stored.c;
      prev = stored.p;
    } else if (stored.w === w - 1) {
      prev = stored.c;
    }
  }
  ev.w = w;
  ev.cur = cur;
  ev.prev = prev;
  ev.reset = win - e;
  const weighted = prev * (win - e) + (cur + cost) * win;
  const retry = (): number => {
    if (cur + cost <= limit) return win - Math.floor(((limit - cur - cost) * win) / prev) - e;
    // the current window alone is over: wait for it to become the previous one, then for its weight to fall
    return win - e + (win - Math.floor(((limit - cost) * win) / cur));
  };
  verdict(ev, { isAboveLimit: cost > limit, isOver: weighted > limit * win, retry });
  const over = weighted - limit * win;
  ev.overage = over > 0 ? Math.min(cost, ceilDiv(over, win)) : 0;
  return ev;
}

function evaluatePeriodQuota(lim: CompiledLimit, { state, now, cost }: EvaluationContext): Evaluation {
  const [limit, , endMs, nextEnd] = [lim.p1, lim.p2, lim.p3, lim.p4];
  // a request at or after the named period's end counts in the next one
  const isNext = now >= endMs;
  const ev = blank(lim, isNext ? (lim.nextKey ?? '') : lim.key);
  const used = state.counters.get(ev.key) ?? 0;
  ev.used = used;
  ev.periodEnd = isNext ? nextEnd : endMs;
  ev.reset = ev.periodEnd - now;
  verdict(ev, { isAboveLimit: cost > limit, isOver: used + cost > limit, retry: () => ev.reset });
  ev.overage = used + cost > limit ? Math.min(cost, used + cost - limit) : 0;
  for (const pct of lim.thresholds) {
    if (used * 100 < pct * limit && (used + cost) * 100 >= pct * limit && pct > ev.crossed) ev.crossed = pct;
  }
  return ev;
}

function evaluateConcurrency(lim: CompiledLimit, { state, now }: EvaluationContext): Evaluation {
  const ev = blank(lim);
  const leases = state.leases.get(lim.key) ?? new Map<string, number>();
  const live = [...leases.values()].filter((expiry) => expiry > now).sort((a, b) => a - b);
  ev.held = live.length;
  if (live.length + 1 > lim.p1) {
    ev.fits = false;
    ev.retry = (live[0] ?? now) - now;
  }
  ev.overage = live.length + 1 > lim.p1 ? 1 : 0;
  return ev;
}

/** Reads one limit at `context.now` and decides whether `context.cost` fits it. Reads only. */
export function evaluate(lim: CompiledLimit, context: EvaluationContext): Evaluation {
  switch (lim.alg) {
    case ALG.tokenBucket:
      return evaluateTokenBucket(lim, context);
    case ALG.fixedWindow:
      return evaluateFixedWindow(lim, context);
    case ALG.slidingWindow:
      return evaluateSlidingWindow(lim, context);
    case ALG.periodQuota:
      return evaluatePeriodQuota(lim, context);
    case ALG.concurrency:
      return evaluateConcurrency(lim, context);
  }
}

/** Takes the request's cost (a lease, for concurrency) from the evaluated limit and sets what remains. */
export function take(ev: Evaluation, request: EvaluationContext & { requestId: string }): void {
  const { state, now, cost } = request;
  const lim = ev.limit;
  switch (lim.alg) {
    case ALG.tokenBucket: {
      const [cap, rate, per] = [lim.p1, lim.p2, lim.p3];
      const tokens = Math.max(0, ev.tokens - cost);
      const r = tokens >= cap ? 0 : ev.r;
      state.tb.set(lim.key, { t: tokens, ts: now, r });
      ev.remaining = tokens;
      ev.reset = Math.max(1, ceilDiv((cap - tokens) * per - r, rate));
      break;
    }
    case ALG.fixedWindow: {
      const n = ev.n + cost;
      state.fw.set(lim.key, { w: ev.w, n });
      ev.remaining = lim.p1 - n;
      break;
    }
    case ALG.slidingWindow: {
      const win = lim.p2;
      const cur = ev.cur + cost;
      state.sw.set(lim.key, { w: ev.w, c: cur, p: ev.prev });
      const e = win - ev.reset;
      ev.remaining = Math.floor((lim.p1 * win - ev.prev * (win - e) - cur * win) / win);
      break;
    }
    case ALG.periodQuota: {
      const used = (state.counters.get(ev.key) ?? 0) + cost;
      state.counters.set(ev.key, used);
      ev.remaining = lim.p1 - used;
      break;
    }
    case ALG.concurrency: {
      const leases = state.leases.get(lim.key) ?? new Map<string, number>();
      for (const [id, expiry] of leases) if (expiry <= now) leases.delete(id);
      leases.set(request.requestId, now + lim.p2);
      state.leases.set(lim.key, leases);
      ev.remaining = lim.p1 - ev.held - 1;
      ev.reset = Math.min(...leases.values()) - now;
      break;
    }
  }
  if (ev.remaining < 0) ev.remaining = 0;
}

/** Sets what remains of a limit the request did not take from (denied, deferred, or a shadow limit it would exceed). */
export function remainingWithoutTake(ev: Evaluation): void {
  const lim = ev.limit;
  let value = 0;
  switch (lim.alg) {
    case ALG.tokenBucket:
      value = ev.tokens;
      ev.reset = ceilDiv((lim.p1 - ev.tokens) * lim.p3 - ev.r, lim.p2);
      break;
    case ALG.fixedWindow:
      value = lim.p1 - ev.n;
      break;
    case ALG.slidingWindow: {
      const win = lim.p2;
      const e = win - ev.reset;
      value = Math.floor((lim.p1 * win - ev.prev * (win - e) - ev.cur * win) / win);
      break;
    }
    case ALG.periodQuota:
      value = lim.p1 - ev.used;
      break;
    case ALG.concurrency:
      value = lim.p1 - ev.held;
      break;
  }
  ev.remaining = Math.max(0, value);
}
