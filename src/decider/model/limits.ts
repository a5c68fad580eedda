/**
 * The compiled form of limits, shared by the Lua script's arguments and the
 * pure TypeScript model, plus the model itself: `decideModel` computes, for one
 * request, exactly the reply `lua/decide.lua` returns, given the same state
 * and the same Redis time. Pure (no I/O); the differential test holds the two
 * together.
 *
 * Units: every quantity is an integer number of cost units; times are ms.
 */

export const ALG = { tokenBucket: 1, fixedWindow: 2, slidingWindow: 3, periodQuota: 4, concurrency: 5 } as const;
export const MODE = { hard: 1, soft: 2, defer: 3, shadow: 4 } as const;

export type AlgCode = (typeof ALG)[keyof typeof ALG];
export type ModeCode = (typeof MODE)[keyof typeof MODE];

/** One limit as the script sees it: algorithm, mode, four integer parameters and thresholds. */
export interface CompiledLimit {
  alg: AlgCode;
  mode: ModeCode;
  /** tb capacity | fw/sw limit | pq limit | cc slots */
  p1: number;
  /** tb refill amount | fw/sw window ms | pq startMs | cc lease ttl ms */
  p2: number;
  /** tb refill period ms | pq endMs */
  p3: number;
  /** pq next period's endMs */
  p4: number;
  /** Percents of p1 whose crossing is reported (period quotas only). */
  thresholds: number[];
  /** The bucket key; for period quotas the current period's key. */
  key: string;
  /** Period quotas only: the next period's key. */
  nextKey?: string;
}

/** Script reply of one request (the wire shape, decoded). */
export interface RawDecision {
  kind: 0 | 1 | 2 | 3;
  nowMs: number;
  limitIndex: number;
  retryAfterMs: number;
  streamId: string;
  isReplay: boolean;
  limits: { remaining: number; resetMs: number; flags: number; overage: number; crossed: number }[];
}

/** What the model keeps per key; mirrors the Redis data layout v1. */
export interface ModelState {
  tb: Map<string, { t: number; ts: number; r: number }>;
  fw: Map<string, { w: number; n: number }>;
  sw: Map<string, { w: number; c: number; p: number }>;
  counters: Map<string, number>;
  leases: Map<string, Map<string, number>>;
  records: Map<string, RawDecision>;
  settlements: Map<string, RawSettlement>;
  events: number;
}

/** settle.lua's reply (the stream id aside): 1 settled, 2 replay of an earlier settle, 0 unknown request. */
export interface RawSettlement {
  status: 0 | 1 | 2;
  nowMs: number;
  refund: number;
}

export function emptyModelState(): ModelState {
  return { tb: new Map(), fw: new Map(), sw: new Map(), counters: new Map(), leases: new Map(), records: new Map(), settlements: new Map(), events: 0 };
}

const ceilDiv = (a: number, b: number): number => Math.floor((a + b - 1) / b);

interface Evaluation {
  fits: boolean;
  remaining: number;
  reset: number;
  retry: number;
  overage: number;
  crossed: number;
  // algorithm state read
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

function evaluate(state: ModelState, lim: CompiledLimit, cost: number, now: number): Evaluation {
  const ev: Evaluation = {
    fits: true, remaining: 0, reset: 0, retry: 0, overage: 0, crossed: 0,
    tokens: 0, r: 0, w: 0, n: 0, cur: 0, prev: 0, key: lim.key, used: 0, periodEnd: 0, held: 0,
  };
  switch (lim.alg) {
    case ALG.tokenBucket: {
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
      if (cost > cap) {
        ev.fits = false;
        ev.retry = -1;
      } else if (cost > tokens) {
        ev.fits = false;
        ev.retry = ceilDiv((cost - tokens) * per - r, rate);
      }
      ev.overage = cost > tokens ? cost - tokens : 0;
      break;
    }
    case ALG.fixedWindow: {
      const [limit, win] = [lim.p1, lim.p2];
      const w = Math.floor(now / win);
      const stored = state.fw.get(lim.key);
      const n = stored !== undefined && stored.w === w ? stored.n : 0;
      ev.w = w;
      ev.n = n;
      ev.reset = (w + 1) * win - now;
      if (cost > limit) {
        ev.fits = false;
        ev.retry = -1;
      } else if (n + cost > limit) {
        ev.fits = false;
        ev.retry = ev.reset;
      }
      ev.overage = n + cost > limit ? Math.min(cost, n + cost - limit) : 0;
      break;
    }
    case ALG.slidingWindow: {
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
      if (cost > limit) {
        ev.fits = false;
        ev.retry = -1;
      } else if (weighted > limit * win) {
        ev.fits = false;
        if (cur + cost <= limit) {
          const eMin = win - Math.floor(((limit - cur - cost) * win) / prev);
          ev.retry = eMin - e;
        } else {
          const eNext = win - Math.floor(((limit - cost) * win) / cur);
          ev.retry = win - e + eNext;
        }
      }
      const over = weighted - limit * win;
      ev.overage = over > 0 ? Math.min(cost, ceilDiv(over, win)) : 0;
      break;
    }
    case ALG.periodQuota: {
      const [limit, , endMs, nextEnd] = [lim.p1, lim.p2, lim.p3, lim.p4];
      let key = lim.key;
      let periodEnd = endMs;
      if (now >= endMs) {
        key = lim.nextKey ?? '';
        periodEnd = nextEnd;
      }
      const used = state.counters.get(key) ?? 0;
      ev.key = key;
      ev.used = used;
      ev.periodEnd = periodEnd;
      ev.reset = periodEnd - now;
      if (cost > limit) {
        ev.fits = false;
        ev.retry = -1;
      } else if (used + cost > limit) {
        ev.fits = false;
        ev.retry = ev.reset;
      }
      ev.overage = used + cost > limit ? Math.min(cost, used + cost - limit) : 0;
      for (const pct of lim.thresholds) {
        if (used * 100 < pct * limit && (used + cost) * 100 >= pct * limit && pct > ev.crossed) ev.crossed = pct;
      }
      break;
    }
    case ALG.concurrency: {
      const leases = state.leases.get(lim.key) ?? new Map<string, number>();
      const live = [...leases.values()].filter((expiry) => expiry > now).sort((a, b) => a - b);
      ev.held = live.length;
      if (live.length + 1 > lim.p1) {
        ev.fits = false;
        ev.retry = (live[0] ?? now) - now;
      }
      ev.overage = live.length + 1 > lim.p1 ? 1 : 0;
      break;
    }
  }
  return ev;
}

function apply(state: ModelState, lim: CompiledLimit, ev: Evaluation, cost: number, now: number, requestId: string): void {
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
      leases.set(requestId, now + lim.p2);
      state.leases.set(lim.key, leases);
      ev.remaining = lim.p1 - ev.held - 1;
      ev.reset = Math.min(...leases.values()) - now;
      break;
    }
  }
  if (ev.remaining < 0) ev.remaining = 0;
}

function remainingWithoutTake(lim: CompiledLimit, ev: Evaluation): void {
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

/** One request as the model takes it (the same values the script's arguments carry). */
export interface ModelRequest {
  requestId: string;
  recordKey: string;
  cost: number;
  limits: CompiledLimit[];
}

/**
 * Decides one request at Redis time `now`, mutating `state` exactly as the
 * script mutates Redis, and returns the script's reply. A stored record
 * (an admitted request seen before) is returned flagged as a replay.
 */
export function decideModel(state: ModelState, request: ModelRequest, now: number): RawDecision {
  const stored = state.records.get(request.recordKey);
  if (stored !== undefined) return { ...stored, isReplay: true };
  const evs = request.limits.map((lim) => evaluate(state, lim, request.cost, now));
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
    if (isAdmitted && (lim.mode !== MODE.shadow || ev.fits)) apply(state, lim, ev, request.cost, now, request.requestId);
    else remainingWithoutTake(lim, ev);
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
    switch (lim.alg) {
      case ALG.tokenBucket: {
        const ev = evaluate(state, lim, 0, now);
        let tokens = ev.tokens + refund;
        let r = ev.r;
        if (tokens >= lim.p1) {
          tokens = lim.p1;
          r = 0;
        }
        state.tb.set(lim.key, { t: tokens, ts: now, r });
        break;
      }
      case ALG.fixedWindow:
      case ALG.slidingWindow: {
        const win = lim.p2;
        const wNow = Math.floor(now / win);
        const wThen = Math.floor(decidedAt / win);
        const isSliding = lim.alg === ALG.slidingWindow;
        const stored = isSliding ? state.sw.get(lim.key) : state.fw.get(lim.key);
        const storedW = stored?.w;
        let count = stored === undefined ? 0 : 'c' in stored ? stored.c : stored.n;
        let prev = stored !== undefined && 'p' in stored ? stored.p : 0;
        if (refund > 0) {
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
        break;
      }
      case ALG.periodQuota: {
        if (refund > 0) {
          const keyThen = decidedAt >= lim.p3 ? (lim.nextKey ?? '') : lim.key;
          const used = state.counters.get(keyThen) ?? 0;
          const back = Math.min(refund, used);
          if (back > 0) state.counters.set(keyThen, used - back);
        } else {
          const keyNow = now >= lim.p3 ? (lim.nextKey ?? '') : lim.key;
          state.counters.set(keyNow, (state.counters.get(keyNow) ?? 0) - refund);
        }
        break;
      }
      case ALG.concurrency:
        break;
    }
  });
  const settlement: RawSettlement = { status: 1, nowMs: now, refund };
  state.settlements.set(request.recordKey, settlement);
  state.events += 1;
  return settlement;
}
