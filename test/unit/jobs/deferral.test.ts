import { describe, expect, it } from 'vitest';
import {
  InMemoryDeferrer,
  deferOperation,
  deferSubmission,
  findRetriedJob,
  type DeferInput,
  type DeferredJob,
  type Deferrer,
} from '../../../src/jobs/index.js';
import {
  CapacityError,
  DependencyError,
  parseEventId,
  parseKeyId,
  parseLimitId,
  parsePlanId,
  parseTenantId,
  type EventId,
  type TenantId,
} from '../../../src/shared/index.js';

const submission = (isNotifyRequested = false) =>
  deferSubmission({
    tenant: parseTenantId('acme'),
    keyId: parseKeyId('k-1'),
    planId: parsePlanId('pro'),
    requestId: parseEventId('i-order-7.0.abc'),
    operationName: 'Report',
    query: 'query Report { report { total } }',
    variables: { year: 2026 },
    cost: 40,
    isNotifyRequested,
  });

/** A deferrer whose every call fails with `error`. */
const failing = (error: Error): Deferrer => ({
  defer: () => Promise.reject(error),
  find: () => Promise.reject(error),
});

describe('deferral', () => {
  it('asks for a webhook notice only when the request did', () => {
    expect(submission(false)).not.toHaveProperty('notifyOnFinish');
    expect(submission(true)).toMatchObject({
      notifyOnFinish: true,
      tenant: 'acme',
      planId: 'pro',
      cost: 40,
      operationName: 'Report',
      variables: { year: 2026 },
    });
  });

  it('defers the submission with the deciding limit and its wait, once per request', async () => {
    // given a deferrer that keeps what it is asked
    const deferrer = new InMemoryDeferrer();
    // when the same request is deferred twice
    const first = await deferOperation({ deferrer, submission: submission(), limitId: parseLimitId('burst'), retryAfterMs: 1_500 });
    const second = await deferOperation({ deferrer, submission: submission(), limitId: parseLimitId('burst'), retryAfterMs: 9_000 });
    // then one job holds the first defer's limit and wait
    expect(first).toEqual({
      kind: 'deferred',
      job: { id: expect.stringMatching(/^j-[0-9a-f]{32}$/) as unknown, status: 'queued', etaMs: 1_500 },
    });
    expect(second).toEqual(first);
    expect([...deferrer.jobs.values()].map((entry) => entry.input)).toEqual([{ ...submission(), limitId: 'burst', retryAfterMs: 1_500 }]);
  });

  it('tells a full queue from a deferrer that is down, by type', async () => {
    const args = { submission: submission(), limitId: parseLimitId('burst'), retryAfterMs: null };
    expect(await deferOperation({ deferrer: failing(new CapacityError('the tenant has 100 unfinished jobs')), ...args })).toEqual({
      kind: 'queue-full',
      code: 'JOB_QUEUE_FULL',
    });
    expect(await deferOperation({ deferrer: failing(new DependencyError('TEMPORAL_UNAVAILABLE', 'deadline exceeded')), ...args })).toEqual({
      kind: 'unavailable',
      code: 'TEMPORAL_UNAVAILABLE',
    });
    expect(await deferOperation({ deferrer: failing(new Error('tokens')), ...args })).toEqual({ kind: 'unavailable', code: 'UNKNOWN' });
  });

  it('finds the job of a retried request and passes the retry as its resubmission', async () => {
    // given a deferrer that records lookups
    const asked: { tenant: TenantId; requestId: EventId; resubmit?: Omit<DeferInput, 'limitId' | 'retryAfterMs'> }[] = [];
    const job: DeferredJob = { id: 'j-1', status: 'running', etaMs: null };
    const deferrer: Deferrer = {
      defer: () => Promise.reject(new Error('not called')),
      find: (input) => {
        asked.push(input);
        return Promise.resolve(input.requestId === submission().requestId ? job : undefined);
      },
    };
    // when the retry of a deferred request is looked up
    expect(await findRetriedJob({ deferrer, submission: submission() })).toEqual({ kind: 'known', job });
    // then the deferrer was asked for that tenant and request, with the request to restart it from
    expect(asked).toEqual([{ tenant: 'acme', requestId: 'i-order-7.0.abc', resubmit: submission() }]);
    const other = { ...submission(), requestId: parseEventId('i-order-8.0.abc') };
    expect(await findRetriedJob({ deferrer, submission: other })).toEqual({ kind: 'none' });
  });

  it('knows no job when the deferrer cannot look jobs up, and says so when the lookup fails', async () => {
    const withoutFind: Deferrer = { defer: () => Promise.reject(new Error('not called')) };
    expect(await findRetriedJob({ deferrer: withoutFind, submission: submission() })).toEqual({ kind: 'none' });
    expect(
      await findRetriedJob({ deferrer: failing(new DependencyError('DYNAMODB_UNAVAILABLE', 'timeout')), submission: submission() }),
    ).toEqual({
      kind: 'unavailable',
      code: 'DYNAMODB_UNAVAILABLE',
    });
  });
});
