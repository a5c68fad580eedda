/**
 * The shapes the model shares with the scripts: a limit as `lua/decide.lua`
 * reads it (algorithm and mode codes, four integer parameters), the script's
 * reply, and the model's state, which mirrors the Redis data layout v1.
 *
 * Units: every quantity is an integer number of cost units; times are ms.
 */

/** Algorithm codes of decide.lua's limit definitions. */
export const ALG = { tokenBucket: 1, fixedWindow: 2, slidingWindow: 3, periodQuota: 4, concurrency: 5 } as const;
/** Mode codes of decide.lua's limit definitions. */
export const MODE = { hard: 1, soft: 2, defer: 3, shadow: 4 } as const;

/** An algorithm code (1..5). */
export type AlgCode = (typeof ALG)[keyof typeof ALG];
/** A mode code (1..4). */
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

/** A model with no keys: an empty Redis. */
export function emptyModelState(): ModelState {
  return {
    tb: new Map(),
    fw: new Map(),
    sw: new Map(),
    counters: new Map(),
    leases: new Map(),
    records: new Map(),
    settlements: new Map(),
    events: 0,
  };
}

/** One request as the model takes it (the same values the script's arguments carry). */
export interface ModelRequest {
  requestId: string;
  recordKey: string;
  cost: number;
  limits: CompiledLimit[];
}
