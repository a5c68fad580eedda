import type { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import type { Decision, LimitSpec, LimitState } from '../../../src/decider/index.js';
import {
  admittedResponse,
  deferralResponse,
  degradedRefusalResponse,
  deniedResponse,
  jobAcceptedResponse,
  jobsUnavailableResponse,
  refusal,
} from '../../../src/graphql/decision-response.js';
import { DependencyError, parseLimitId } from '../../../src/shared/index.js';

const specs: LimitSpec[] = [
  {
    id: parseLimitId('burst'),
    scope: 'apiKey',
    algorithm: { kind: 'token-bucket', capacity: 100, refillAmount: 10, refillPeriodMs: 1000 },
    mode: 'hard',
    onDeciderDown: 'open',
  },
];
const state = (remaining: number): LimitState => ({
  id: parseLimitId('burst'),
  kind: 'token-bucket',
  mode: 'hard',
  remaining,
  resetMs: 4_000,
  isExceeded: false,
  hasTaken: true,
  overage: 0,
});
const NOW = Date.UTC(2026, 10, 15);
const retry = { jitterRatio: 0.2, random: () => 0.5 };
const limitId = parseLimitId('burst');

/** The single error of an answer, as the client sees it. */
const errorOf = (response: { result: { errors?: readonly GraphQLError[] } }) => {
  expect(response.result.errors).toHaveLength(1);
  return response.result.errors?.[0]?.toJSON();
};

describe('decision responses', () => {
  it('answers a denied rate with 429, the limits and a jittered Retry-After on the error and the response', () => {
    // given a rate limit that fits again in 2.5 s
    const decision: Decision = { kind: 'denied', limitId, isQuota: false, retryAfterMs: 2_500, nowMs: NOW, limits: [state(3)] };
    // when it is answered (jitter: half of 20 % of 2.5 s)
    const response = deniedResponse({ decision, requested: 7, specs, retry });
    // then
    const headers = { 'RateLimit-Policy': '"burst";q=100;w=10', RateLimit: '"burst";r=3;t=4', 'Retry-After': '3' };
    expect(response).toMatchObject({ status: 429, refusal: 'RATE_LIMITED', headers });
    expect(errorOf(response)).toEqual({
      message: 'rate limit burst exceeded',
      extensions: { code: 'RATE_LIMITED', retryAfterMs: 2_500, limitId: 'burst', http: { status: 429, spec: false, headers } },
    });
    expect(response.result.extensions?.['cost']).toMatchObject({ requested: 7, actual: null, receipt: null });
  });

  it('names a spent quota, and an operation that can never fit gets no Retry-After', () => {
    const quota = deniedResponse({
      decision: { kind: 'denied', limitId, isQuota: true, retryAfterMs: 60_000, nowMs: NOW, limits: [state(0)] },
      requested: 7,
      specs,
      retry,
    });
    expect(quota.refusal).toBe('QUOTA_EXHAUSTED');
    expect(errorOf(quota)?.message).toBe('quota burst is exhausted for this period');
    const never = deniedResponse({
      decision: { kind: 'denied', limitId, isQuota: false, retryAfterMs: null, nowMs: NOW, limits: [state(100)] },
      requested: 500,
      specs,
      retry,
    });
    expect(errorOf(never)?.message).toBe('limit burst can never admit an operation costing 500');
    expect(never.headers).not.toHaveProperty('Retry-After');
  });

  it('refuses by policy while the limiter is down: 429 from the local backstop, 503 when failing closed', () => {
    const reason = new DependencyError('REDIS_UNAVAILABLE', 'timeout');
    const local = degradedRefusalResponse({
      decision: { kind: 'degraded', policy: 'local', isAdmitted: false, usageId: null, retryAfterMs: 400, nowMs: NOW, reason },
      requested: 5,
      specs,
      retry,
    });
    expect(local).toMatchObject({ status: 429, refusal: 'RATE_LIMITED', headers: { 'Retry-After': '1', 'Tollgate-Degraded': 'local' } });
    expect(errorOf(local)?.extensions).toMatchObject({ retryAfterMs: 400, degraded: 'local' });
    const closed = degradedRefusalResponse({
      decision: { kind: 'degraded', policy: 'closed', isAdmitted: false, usageId: null, retryAfterMs: null, nowMs: NOW, reason },
      requested: 5,
      specs,
      retry,
    });
    expect(closed).toMatchObject({
      status: 503,
      refusal: 'LIMITER_UNAVAILABLE',
      headers: { 'Retry-After': '2', 'Tollgate-Degraded': 'closed' },
    });
    expect(errorOf(closed)?.extensions).toMatchObject({ retryAfterMs: 1_000 });
    expect(closed.result.extensions?.['cost']).toMatchObject({ degraded: 'closed', limits: [] });
  });

  it('answers a deferral with 202 and the job, with the limits when freshly deferred and without them for a retry', () => {
    const job = { id: 'j-7', status: 'queued' as const, etaMs: 2_000 };
    const decision: Decision = { kind: 'deferred', limitId, retryAfterMs: 2_000, nowMs: NOW, limits: [state(0)] };
    const fresh = deferralResponse({ decision, outcome: { kind: 'deferred', job }, requested: 9, specs, retry });
    expect(fresh).toMatchObject({ status: 202, headers: { Location: '/jobs/j-7', RateLimit: '"burst";r=0;t=4' } });
    expect(fresh.refusal).toBeUndefined();
    expect(fresh.result).toMatchObject({ data: null, extensions: { job, http: { status: 202, headers: fresh.headers } } });
    const retried = jobAcceptedResponse({ job, requested: 9, specs });
    expect(retried.headers).toEqual({ Location: '/jobs/j-7' });
    expect(retried.result.extensions?.['cost']).toMatchObject({ limits: [], throttleStatus: null });
  });

  it('answers a deferral that could not be made: 429 with the reason for a full queue, 503 when jobs are down', () => {
    const decision: Decision = { kind: 'deferred', limitId, retryAfterMs: null, nowMs: NOW, limits: [state(0)] };
    const full = deferralResponse({ decision, outcome: { kind: 'queue-full', code: 'JOB_QUEUE_FULL' }, requested: 9, specs, retry });
    expect(full).toMatchObject({ status: 429, refusal: 'QUOTA_EXHAUSTED', headers: { 'Retry-After': '2' } });
    expect(errorOf(full)?.extensions).toMatchObject({ retryAfterMs: 1_000, limitId: 'burst', reason: 'JOB_QUEUE_FULL' });
    const down = deferralResponse({ decision, outcome: { kind: 'unavailable', code: 'TEMPORAL_UNAVAILABLE' }, requested: 9, specs, retry });
    // the Retry-After travels on the error only
    expect(down).toMatchObject({ status: 503, refusal: 'JOBS_UNAVAILABLE', headers: {} });
    expect(errorOf(down)?.extensions).toMatchObject({ limitId: 'burst', http: { headers: { 'Retry-After': '5' } } });
    expect(errorOf(jobsUnavailableResponse())?.message).toBe('deferred jobs are unavailable; retry later with the same Idempotency-Key');
  });

  it('reports an admitted operation after its refund, with soft-limit warnings', () => {
    // given a warned admission of 10 units that measured 4
    const decision: Extract<Decision, { kind: 'warned' }> = {
      kind: 'warned',
      warnings: [{ kind: 'threshold-crossed', limitId, percent: 80 }],
      usageId: 'u-1',
      streamId: '1-0',
      nowMs: NOW,
      limits: [state(20)],
      shadowDenials: [],
      isReplay: false,
    };
    const answer = admittedResponse({
      decision,
      result: { data: { a: 1 }, extensions: { trace: 1 } },
      requested: 10,
      actual: 4,
      refund: 6,
      specs,
    });
    // then the 6 units are back in the limit, in extensions and headers alike
    expect(answer.result).toMatchObject({
      data: { a: 1 },
      extensions: { trace: 1, cost: { requested: 10, actual: 4, refunded: 6, receipt: 'u-1', limits: [{ remaining: 26 }] } },
    });
    expect(answer.result.extensions?.['quota']).toEqual({ warnings: [{ kind: 'threshold-crossed', limitId: 'burst', percent: 80 }] });
    expect(answer.headers).toEqual({
      'RateLimit-Policy': '"burst";q=100;w=10',
      RateLimit: '"burst";r=26;t=4',
      'Tollgate-Quota-Warning': '"burst";percent=80',
    });
  });

  it('reports a degraded admission by its cost only: no limit state is known', () => {
    const reason = new DependencyError('REDIS_UNAVAILABLE', 'timeout');
    const answer = admittedResponse({
      decision: { kind: 'degraded', policy: 'open', isAdmitted: true, usageId: 'u-2', retryAfterMs: null, nowMs: NOW, reason },
      result: { data: { a: 1 } },
      requested: 10,
      actual: 10,
      refund: 0,
      specs,
    });
    expect(answer.headers).toEqual({});
    expect(answer.result.extensions?.['cost']).toMatchObject({ degraded: 'open', receipt: 'u-2', limits: [] });
  });

  it('keeps error headers apart from response headers unless asked', () => {
    const response = refusal({ code: 'LIMITER_UNAVAILABLE', message: 'down', status: 503, headers: { 'Retry-After': '1' } });
    expect(response.headers).toEqual({});
    expect(response.result).not.toHaveProperty('extensions');
    expect(errorOf(response)?.extensions).toEqual({
      code: 'LIMITER_UNAVAILABLE',
      http: { status: 503, spec: false, headers: { 'Retry-After': '1' } },
    });
  });
});
