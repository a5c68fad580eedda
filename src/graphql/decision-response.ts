/**
 * What the client gets for a decision (DESIGN §2): the execution result, the
 * headers of the HTTP response and its status. Pure: no I/O, no yoga hooks;
 * `useTollgate` sends what these return.
 */
import type { ExecutionResult } from 'graphql';
import type { Decision, LimitSpec, LimitState } from '../decider/index.js';
import type { DeferredJob, DeferOutcome } from '../jobs/index.js';
import {
  applyRefund,
  costExtension,
  edgeError,
  rateLimitHeaders,
  retryAfterSeconds,
  warningReports,
  type CostExtension,
  type EdgeErrorCode,
} from './responses.js';

/** An answer given instead of running the operation. */
export interface EdgeResponse {
  result: ExecutionResult;
  /**
   * Headers the HTTP response gets (shared by the operations of a batch). An
   * error also carries its own headers in `extensions.http`, which yoga sends.
   */
  headers: Record<string, string>;
  /** HTTP status of the answer. */
  status: number;
  /** The refusal's code, counted in the refusals metric; absent when nothing was refused. */
  refusal?: EdgeErrorCode;
}

/** How `Retry-After` is jittered (see {@link retryAfterSeconds}). */
export interface RetryJitter {
  jitterRatio: number;
  random: () => number;
}

/** A refusal: one error with a stable code and status, and what the response says besides. */
export interface RefusalInput {
  code: EdgeErrorCode;
  message: string;
  status: number;
  /** Headers of the error (yoga sends them). */
  headers?: Record<string, string>;
  extensions?: Record<string, unknown>;
  /** `extensions.cost` of the result. */
  cost?: CostExtension;
  /** Headers the whole HTTP response gets. @default {} */
  responseHeaders?: Record<string, string>;
}

/** A refused operation: `{ errors: [error] }` and, when priced, `extensions.cost`. */
export function refusal(input: RefusalInput): EdgeResponse {
  const error = edgeError(input.code, input.message, {
    status: input.status,
    ...(input.headers === undefined ? {} : { headers: input.headers }),
    ...(input.extensions === undefined ? {} : { extensions: input.extensions }),
  });
  return {
    result: { errors: [error], ...(input.cost === undefined ? {} : { extensions: { cost: input.cost } }) },
    headers: input.responseHeaders ?? {},
    status: input.status,
    refusal: input.code,
  };
}

type Denied = Extract<Decision, { kind: 'denied' }>;
type Deferred = Extract<Decision, { kind: 'deferred' }>;
type Degraded = Extract<Decision, { kind: 'degraded' }>;
/** A decision that lets the operation run (a `degraded` one when `isAdmitted`). */
export type AdmittedDecision = Extract<Decision, { kind: 'allowed' | 'warned' | 'degraded' }>;

/** 429 `QUOTA_EXHAUSTED` or `RATE_LIMITED` with the limits' state and a jittered `Retry-After` (none when it can never fit). */
export function deniedResponse(input: { decision: Denied; requested: number; specs: LimitSpec[]; retry: RetryJitter }): EdgeResponse {
  const { decision, requested, specs } = input;
  const headers = { ...rateLimitHeaders(decision.limits, specs, decision.nowMs) };
  if (decision.retryAfterMs !== null) headers['Retry-After'] = String(retryAfterSeconds(decision.retryAfterMs, input.retry));
  const message =
    decision.retryAfterMs === null
      ? `limit ${decision.limitId} can never admit an operation costing ${requested}`
      : decision.isQuota
        ? `quota ${decision.limitId} is exhausted for this period`
        : `rate limit ${decision.limitId} exceeded`;
  return refusal({
    code: decision.isQuota ? 'QUOTA_EXHAUSTED' : 'RATE_LIMITED',
    message,
    status: 429,
    headers,
    responseHeaders: headers,
    extensions: { retryAfterMs: decision.retryAfterMs, limitId: decision.limitId },
    cost: costExtension({ requested, actual: null, states: decision.limits, specs, receipt: null }),
  });
}

/** 429 (local backstop) or 503 (fails closed) while the limiter is unavailable, with `Tollgate-Degraded`. */
export function degradedRefusalResponse(input: {
  decision: Degraded;
  requested: number;
  specs: LimitSpec[];
  retry: RetryJitter;
}): EdgeResponse {
  const { decision, requested, specs } = input;
  const waitMs = decision.retryAfterMs ?? 1_000;
  const headers = { 'Retry-After': String(retryAfterSeconds(waitMs, input.retry)), 'Tollgate-Degraded': decision.policy };
  const cost = costExtension({ requested, actual: null, states: [], specs, receipt: null, degraded: decision.policy });
  return decision.policy === 'local'
    ? refusal({
        code: 'RATE_LIMITED',
        message: 'rate limit exceeded (local backstop while the limiter is unavailable)',
        status: 429,
        headers,
        responseHeaders: headers,
        extensions: { retryAfterMs: waitMs, degraded: 'local' },
        cost,
      })
    : refusal({
        code: 'LIMITER_UNAVAILABLE',
        message: 'the limiter is unavailable and this plan fails closed; retry later',
        status: 503,
        headers,
        responseHeaders: headers,
        extensions: { retryAfterMs: waitMs },
        cost,
      });
}

/**
 * 202 with the job (`extensions.job`, `Location: /jobs/<id>`). `limits`: the
 * deciding limits' state (a fresh defer); a job found for a retry has none.
 */
export function jobAcceptedResponse(input: {
  job: DeferredJob;
  requested: number;
  specs: LimitSpec[];
  limits?: { states: LimitState[]; nowMs: number };
}): EdgeResponse {
  const { job, requested, specs, limits } = input;
  const headers = { ...(limits === undefined ? {} : rateLimitHeaders(limits.states, specs, limits.nowMs)), Location: `/jobs/${job.id}` };
  return {
    result: {
      data: null,
      extensions: {
        job: { id: job.id, status: job.status, etaMs: job.etaMs },
        cost: costExtension({ requested, actual: null, states: limits?.states ?? [], specs, receipt: null }),
        http: { status: 202, headers },
      },
    },
    headers,
    status: 202,
  };
}

/** 503 `JOBS_UNAVAILABLE`: deferred jobs cannot be read or written; the client retries with the same Idempotency-Key. */
export function jobsUnavailableResponse(input: { limitId?: string } = {}): EdgeResponse {
  return input.limitId === undefined
    ? refusal({
        code: 'JOBS_UNAVAILABLE',
        message: 'deferred jobs are unavailable; retry later with the same Idempotency-Key',
        status: 503,
        headers: { 'Retry-After': '5' },
      })
    : refusal({
        code: 'JOBS_UNAVAILABLE',
        message: `limit ${input.limitId} is exhausted and deferred jobs are unavailable; retry later with the same Idempotency-Key`,
        status: 503,
        headers: { 'Retry-After': '5' },
        extensions: { limitId: input.limitId },
      });
}

/** 503 `LIMITER_UNAVAILABLE`: the decider failed outside degraded mode (no policy applied); the client retries shortly. */
export function limiterUnavailableResponse(): EdgeResponse {
  return refusal({
    code: 'LIMITER_UNAVAILABLE',
    message: 'the limiter is unavailable; retry later',
    status: 503,
    headers: { 'Retry-After': '1' },
  });
}

/** 503 `OVERLOADED`: this instance has more work in hand than it takes; nothing was charged, the client retries shortly. */
export function overloadedResponse(message: string): EdgeResponse {
  return refusal({ code: 'OVERLOADED', message, status: 503, headers: { 'Retry-After': '1' } });
}

/** 503 `OVERLOADED`: this instance's deferral lane is full; nothing was recorded or charged, the client retries shortly. */
export function deferralLaneFullResponse(): EdgeResponse {
  return overloadedResponse('this API instance has as many deferred jobs in hand as it takes; retry later');
}

/** The answer to a `deferred` decision once the deferrer was asked: 202, 429 (queue full) or 503 (jobs down, lane full). */
export function deferralResponse(input: {
  decision: Deferred;
  outcome: DeferOutcome;
  requested: number;
  specs: LimitSpec[];
  retry: RetryJitter;
}): EdgeResponse {
  const { decision, outcome } = input;
  switch (outcome.kind) {
    case 'deferred':
      return jobAcceptedResponse({
        job: outcome.job,
        requested: input.requested,
        specs: input.specs,
        limits: { states: decision.limits, nowMs: decision.nowMs },
      });
    case 'unavailable':
      return jobsUnavailableResponse({ limitId: decision.limitId });
    case 'overloaded':
      return deferralLaneFullResponse();
    case 'queue-full': {
      const waitMs = decision.retryAfterMs ?? 1_000;
      const headers = { 'Retry-After': String(retryAfterSeconds(waitMs, input.retry)) };
      return refusal({
        code: 'QUOTA_EXHAUSTED',
        message: `limit ${decision.limitId} is exhausted and the operation could not be deferred`,
        status: 429,
        headers,
        responseHeaders: headers,
        extensions: { retryAfterMs: waitMs, limitId: decision.limitId, reason: outcome.code },
      });
    }
  }
}

/**
 * The result of an admitted operation once it ran: `extensions.cost` (the
 * limits' state after the refund), the RateLimit headers, soft-limit warnings,
 * and for a degraded admission only the cost (no limit state is known).
 * `refund`: units given back by the settlement (negative: an overrun taken).
 */
export function admittedResponse(input: {
  decision: AdmittedDecision;
  result: ExecutionResult;
  requested: number;
  actual: number;
  refund: number;
  specs: LimitSpec[];
}): { result: ExecutionResult; headers: Record<string, string> } {
  const { decision, requested, actual, specs } = input;
  const extensions: Record<string, unknown> = { ...input.result.extensions };
  const headers: Record<string, string> = {};
  if (decision.kind === 'degraded') {
    extensions['cost'] = costExtension({ requested, actual, states: [], specs, receipt: decision.usageId, degraded: decision.policy });
  } else {
    const states = applyRefund(decision.limits, specs, input.refund);
    extensions['cost'] = costExtension({ requested, actual, states, specs, receipt: decision.usageId });
    Object.assign(headers, rateLimitHeaders(states, specs, decision.nowMs));
    if (decision.kind === 'warned') {
      const warnings = warningReports(decision.warnings);
      extensions['quota'] = { warnings: warnings.extension };
      headers['Tollgate-Quota-Warning'] = warnings.header;
    }
  }
  return { result: { ...input.result, extensions }, headers };
}
