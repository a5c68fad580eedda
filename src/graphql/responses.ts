/**
 * What the client sees of a decision (DESIGN §2): `extensions.cost`, the IETF
 * `RateLimit-Policy` / `RateLimit` headers, soft-limit warnings, jittered
 * `Retry-After`, and the GraphQL errors with stable codes. Pure: no I/O.
 */
import { createGraphQLError } from 'graphql-yoga';
import type { GraphQLError } from 'graphql';
import { periodPairAt, type LimitSpec, type LimitState, type Warning } from '../decider/index.js';
import { isRolloutShadow } from './usage/activity.js';

/** One limit's state as reported to the client. */
export interface LimitReport {
  id: string;
  mode: LimitSpec['mode'];
  remaining: number;
  resetMs: number;
  /** Shadow and soft limits: this request would have been denied (shadow) or is billed as overage (soft). */
  isExceeded: boolean;
}

/** `extensions.cost` (Shopify's shape, plus actual, refunded, per-limit state and the receipt). */
export interface CostExtension {
  requested: number;
  /** Measured after execution; null when the operation did not run. */
  actual: number | null;
  refunded: number;
  throttleStatus: { maximumAvailable: number; currentlyAvailable: number; restoreRate: number } | null;
  limits: LimitReport[];
  /** The usage event id (null when nothing was admitted). */
  receipt: string | null;
  /** Set when the decider was unreachable and the policy decided. */
  degraded?: 'open' | 'local' | 'closed';
  /** Set when this was a replay of an already admitted request (nothing charged again). */
  isReplay?: boolean;
}

function capacityOf(spec: LimitSpec): number {
  const alg = spec.algorithm;
  switch (alg.kind) {
    case 'token-bucket':
      return alg.capacity;
    case 'fixed-window':
    case 'sliding-window':
    case 'period-quota':
      return alg.limit;
    case 'concurrency':
      return alg.slots;
  }
}

/** Window of a limit in whole seconds (IETF `w`), or null for concurrency. */
function windowSeconds(spec: LimitSpec, nowMs: number): number | null {
  const alg = spec.algorithm;
  switch (alg.kind) {
    case 'token-bucket':
      return Math.max(1, Math.ceil((alg.capacity * alg.refillPeriodMs) / alg.refillAmount / 1000));
    case 'fixed-window':
    case 'sliding-window':
      return Math.max(1, Math.ceil(alg.windowMs / 1000));
    case 'period-quota': {
      // periodPairAt is memoised per period: no calendar math per request
      const period = periodPairAt(alg.period, nowMs).current;
      return Math.max(1, Math.round((period.endMs - period.startMs) / 1000));
    }
    case 'concurrency':
      return null;
  }
}

/** Limits a client is held to: shadow limits are reported in extensions only, never in headers. */
const isEnforced = (spec: LimitSpec): boolean => spec.mode !== 'shadow';

/**
 * Limit states after a settlement: the refund returned to each limit that took
 * it (never above capacity); an overrun taken from each.
 */
export function applyRefund(states: LimitState[], specs: LimitSpec[], refund: number): LimitState[] {
  if (refund === 0) return states;
  return states.map((state, index) => {
    const spec = specs[index];
    if (!state.hasTaken || spec === undefined || spec.algorithm.kind === 'concurrency') return state;
    return { ...state, remaining: Math.max(0, Math.min(capacityOf(spec), state.remaining + refund)) };
  });
}

/** `extensions.cost` for an admitted, denied or deferred decision. */
export function costExtension(input: {
  requested: number;
  actual: number | null;
  states: LimitState[];
  specs: LimitSpec[];
  receipt: string | null;
  degraded?: 'open' | 'local' | 'closed';
  isReplay?: boolean;
}): CostExtension {
  // a running rollout's shadow copies are reported to the operator (the rollout status), never to the tenant
  const limits: LimitReport[] = [];
  for (const state of input.states) {
    if (isRolloutShadow(state)) continue;
    limits.push({ id: state.id, mode: state.mode, remaining: state.remaining, resetMs: state.resetMs, isExceeded: state.isExceeded });
  }
  // Throttle status: the first token bucket the client is held to (Shopify's
  // leaky bucket), else the enforced limit with the least left.
  let chosen = -1;
  input.specs.forEach((spec, index) => {
    const state = input.states[index];
    if (!isEnforced(spec) || spec.mode === 'soft' || state === undefined) return;
    const current = input.specs[chosen];
    if (current === undefined) chosen = index;
    else if (current.algorithm.kind === 'token-bucket') return;
    else if (spec.algorithm.kind === 'token-bucket') chosen = index;
    else if (state.remaining < (input.states[chosen]?.remaining ?? 0)) chosen = index;
  });
  const spec = input.specs[chosen];
  const state = input.states[chosen];
  const throttleStatus =
    spec === undefined || state === undefined
      ? null
      : {
          maximumAvailable: capacityOf(spec),
          currentlyAvailable: state.remaining,
          restoreRate:
            spec.algorithm.kind === 'token-bucket'
              ? Math.round(((spec.algorithm.refillAmount * 1000) / spec.algorithm.refillPeriodMs) * 1000) / 1000
              : 0,
        };
  const refunded = input.actual === null ? 0 : Math.max(0, input.requested - input.actual);
  return {
    requested: input.requested,
    actual: input.actual,
    refunded,
    throttleStatus,
    limits,
    receipt: input.receipt,
    ...(input.degraded === undefined ? {} : { degraded: input.degraded }),
    ...(input.isReplay === true ? { isReplay: true } : {}),
  };
}

/** `RateLimit-Policy` and `RateLimit` (IETF httpapi draft, structured-field lists). */
export function rateLimitHeaders(states: LimitState[], specs: LimitSpec[], nowMs: number): Record<string, string> {
  const policy: string[] = [];
  const current: string[] = [];
  specs.forEach((spec, index) => {
    const state = states[index];
    if (!isEnforced(spec) || state === undefined) return;
    const window = windowSeconds(spec, nowMs);
    policy.push(`"${spec.id}";q=${capacityOf(spec)}${window === null ? '' : `;w=${window}`}`);
    current.push(`"${spec.id}";r=${state.remaining};t=${Math.max(0, Math.ceil(state.resetMs / 1000))}`);
  });
  if (policy.length === 0) return {};
  return { 'RateLimit-Policy': policy.join(', '), RateLimit: current.join(', ') };
}

/** Soft-limit warnings for `extensions.quota.warnings` and the `Tollgate-Quota-Warning` header. */
export function warningReports(warnings: Warning[]): { extension: Record<string, unknown>[]; header: string } {
  const extension = warnings.map((warning) =>
    warning.kind === 'soft-limit-exceeded'
      ? { kind: warning.kind, limitId: warning.limitId, overage: warning.overage }
      : { kind: warning.kind, limitId: warning.limitId, percent: warning.percent },
  );
  const header = warnings
    .map((warning) =>
      warning.kind === 'soft-limit-exceeded'
        ? `"${warning.limitId}";overage=${warning.overage}`
        : `"${warning.limitId}";percent=${warning.percent}`,
    )
    .join(', ');
  return { extension, header };
}

/**
 * `Retry-After` in whole seconds: the wait, plus up to `jitterRatio` of it
 * (at least up to a second), so clients told to wait do not return in lockstep.
 */
export function retryAfterSeconds(retryAfterMs: number, input: { jitterRatio: number; random: () => number }): number {
  const jitterMs = input.random() * input.jitterRatio * Math.max(retryAfterMs, 1_000);
  return Math.max(1, Math.ceil((retryAfterMs + jitterMs) / 1000));
}

/** Every code the edge answers with. */
export type EdgeErrorCode =
  | 'API_KEY_REQUIRED'
  | 'API_KEY_INVALID'
  | 'API_KEY_REVOKED'
  | 'TENANT_SUSPENDED'
  | 'KEY_STORE_UNAVAILABLE'
  | 'TOO_MANY_UNKNOWN_KEYS'
  | 'INVALID_HEADER'
  | 'INVALID_ID'
  | 'PLAN_UNAVAILABLE'
  | 'BATCH_LIMIT_EXCEEDED'
  | 'TOKEN_LIMIT_EXCEEDED'
  | 'GRAPHQL_PARSE_FAILED'
  | 'INVALID_SLICING_ARGUMENT'
  | 'SLICING_ARGUMENT_REQUIRED'
  | 'COST_SLICING_ARGUMENTS'
  | 'COST_EXCEEDS_MAXIMUM'
  | 'RATE_LIMITED'
  | 'QUOTA_EXHAUSTED'
  | 'LIMITER_UNAVAILABLE'
  | 'JOBS_UNAVAILABLE'
  | 'IDEMPOTENCY_KEY_REPLAYED'
  | 'SUBSCRIPTIONS_NOT_METERED'
  | 'UNIDENTIFIED'
  | 'REQUEST_TOO_LARGE'
  | 'OVERLOADED';

/** A GraphQL error with a stable code and HTTP status (and headers), as yoga maps them. */
export function edgeError(
  code: EdgeErrorCode,
  message: string,
  input: { status: number; headers?: Record<string, string>; extensions?: Record<string, unknown> },
): GraphQLError {
  return createGraphQLError(message, {
    extensions: {
      code,
      ...input.extensions,
      // spec: false keeps the status for application/json clients too (yoga downgrades spec errors to 200)
      http: { status: input.status, spec: false, ...(input.headers === undefined ? {} : { headers: input.headers }) },
    },
  });
}
