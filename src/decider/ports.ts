/**
 * The `Decider` port: what a caller sends (a request and the limits that apply
 * to it, DESIGN §4) and what it gets back. A decision is a value (STYLE §4):
 * denial, deferral and warnings are kinds, never exceptions.
 */
import type { DependencyError, EventId, KeyId, LimitId, TenantId } from '../shared/index.js';
import type { PeriodSpec } from './model/period.js';
import type { SettleResult } from './replies.js';

/** Who a limit counts for. `global` limits span tenants and are decided in a separate call (not built yet). */
export type LimitScope = 'tenant' | 'apiKey' | 'ip';

/** hard: deny; soft: admit and warn (overage billed); defer: defer deferrable operations; shadow: only report. */
export type LimitMode = 'hard' | 'soft' | 'defer' | 'shadow';

/** What a request under this limit gets when Redis cannot decide (STYLE §4). */
export type OnDeciderDown = 'open' | 'closed' | 'local';

/** A limit's algorithm and its integer parameters (cost units, ms); ranges in `policy.ts`. */
export type LimitAlgorithm =
  | { kind: 'token-bucket'; capacity: number; refillAmount: number; refillPeriodMs: number }
  | { kind: 'fixed-window'; limit: number; windowMs: number }
  | { kind: 'sliding-window'; limit: number; windowMs: number }
  | { kind: 'period-quota'; limit: number; period: PeriodSpec; thresholdsPercent: number[] }
  | { kind: 'concurrency'; slots: number; leaseTtlMs: number };

/** One limit of a plan, as data (validated by `parseLimits` / `validateLimits`). */
export interface LimitSpec {
  id: LimitId;
  scope: LimitScope;
  algorithm: LimitAlgorithm;
  mode: LimitMode;
  onDeciderDown: OnDeciderDown;
}

/** One request to decide. */
export interface DecideInput {
  tenant: TenantId;
  keyId: KeyId;
  /** Deterministic per request (an idempotency key or request id): a retry reuses it. */
  requestId: EventId;
  /** GraphQL operation name (or `anonymous`), recorded in the usage event. */
  operation: string;
  /** Requested cost in integer units, 0..2^53-1. */
  cost: number;
  /** Every limit that applies to this request. */
  limits: LimitSpec[];
  /** The tenant's billing period (anchor day and zone), for the admitted counter. */
  billingPeriod: PeriodSpec;
  /** Version of the plan the limits come from, recorded in the event. */
  policyVersion: number;
  /** Client address, required when an `ip`-scoped limit applies. */
  clientIp?: string;
  /** Whether `defer` limits may defer this operation; if not, they act as `hard`. @default false */
  isDeferrable?: boolean;
  /**
   * How long Redis remembers this admitted request (retries return the first decision; settle and
   * the degraded-mode replay read it), 1 s .. 400 days. Every admitted request holds ~184 B (measured) for
   * this long: keep it short for request ids, long (e.g. 24 h) for client idempotency keys.
   * @default the decider's `recordTtlMs`
   */
  recordTtlMs?: number;
  /**
   * Whale tenants: the number of sub-shards (1..64) the tenant's limits are
   * divided over, each part on its own logical shard; a request is decided by
   * one part (chosen by its request id). See the README for the bounds. @default 1
   */
  subShards?: number;
}

/** A settlement: the decided request and what it actually cost. */
export interface SettleInput extends DecideInput {
  /** Actual cost in integer units, measured after execution. */
  actual: number;
  /** The decision's `nowMs` (Redis time): names the periods the decision counted in. */
  decidedAtMs: number;
}

/** One limit's state after a decision. */
export interface LimitState {
  id: LimitId;
  kind: LimitSpec['algorithm']['kind'];
  mode: LimitMode;
  /** Units (slots, for concurrency) left after this decision. */
  remaining: number;
  /** ms until the limit is fully restored (or its window/period ends). */
  resetMs: number;
  /** True when this request did not fit (for soft and shadow limits: would have been denied). */
  isExceeded: boolean;
  /** True when tokens were taken from this limit. */
  hasTaken: boolean;
  /** Units of this request beyond the limit (soft limits: billed as overage). */
  overage: number;
}

/** Why an admitted request is `warned`. */
export type Warning =
  { kind: 'soft-limit-exceeded'; limitId: LimitId; overage: number } | { kind: 'threshold-crossed'; limitId: LimitId; percent: number };

/** What every admitted decision carries. */
export interface Admitted {
  /** The usage event id (deterministic: the request id); the client's receipt. */
  usageId: string;
  /** Stream entry id of the usage event. */
  streamId: string;
  nowMs: number;
  limits: LimitState[];
  /** Shadow limits that would have denied this request. */
  shadowDenials: LimitId[];
  /** True when this is a retry of an already admitted request: nothing was taken again. */
  isReplay: boolean;
  /**
   * With `waitForReplicas`: how many replicas acknowledged the decision's writes
   * before the wait timed out (fewer than asked: a failover now could lose it).
   */
  replicasAcked?: number;
}

/** The outcome of one request (times in ms; `nowMs` is Redis time unless degraded). */
export type Decision =
  | ({ kind: 'allowed' } & Admitted)
  | ({ kind: 'warned'; warnings: Warning[] } & Admitted)
  | { kind: 'deferred'; limitId: LimitId; retryAfterMs: number | null; nowMs: number; limits: LimitState[] }
  | {
      kind: 'denied';
      limitId: LimitId;
      /** Whether the denying limit is a period quota (QUOTA_EXHAUSTED) or a rate (RATE_LIMITED). */
      isQuota: boolean;
      /** ms until the request could fit; null when it never can (cost above the limit). */
      retryAfterMs: number | null;
      nowMs: number;
      limits: LimitState[];
    }
  | {
      kind: 'degraded';
      /** The strictest `onDeciderDown` among the request's limits. */
      policy: OnDeciderDown;
      /** open: admitted and spooled; closed: refused (503); local: as the in-process backstop decided. */
      isAdmitted: boolean;
      /** The usage event id when admitted (spooled, billed on replay). */
      usageId: string | null;
      /** For refusals: when to retry (null: unknown). */
      retryAfterMs: number | null;
      /** Local clock (Redis was not reached). */
      nowMs: number;
      reason: DependencyError;
    };

/** Port: decides requests against their limits. */
export interface Decider {
  /**
   * @throws ValidationError before any Redis call for bad input
   * @throws DependencyError `REDIS_UNAVAILABLE` when Redis fails or times out
   * @throws OverloadedError `OVERLOADED` (ResilientDecider) when this process, not Redis, kept the answer waiting
   *   past the wall-clock cap: nothing is charged (the edge sheds it with 503 and Retry-After)
   */
  decide(input: DecideInput): Promise<Decision>;
  /**
   * Settles an admitted request with its actual cost: refunds or takes the
   * difference, releases concurrency leases. Idempotent per request id.
   * @throws ValidationError before any Redis call for bad input
   * @throws DependencyError `REDIS_UNAVAILABLE` when Redis fails or times out
   */
  settle(input: SettleInput): Promise<SettleResult>;
}
