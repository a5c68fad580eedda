import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import type { Decision, LimitSpec, LimitState } from '../../../src/decider/index.js';
import { IdempotentResponses, replayResponse } from '../../../src/graphql/idempotency/replay.js';
import { isIdempotencyKey, operationRequestId } from '../../../src/graphql/idempotency/request-id.js';
import { toStoredResult, type ResponseStore, type StoredResponse } from '../../../src/graphql/idempotency/response-store.js';
import { DependencyError, parseEventId, parseLimitId, parseTenantId, type Logger } from '../../../src/shared/index.js';

const specs: LimitSpec[] = [
  {
    id: parseLimitId('burst'),
    scope: 'apiKey',
    algorithm: { kind: 'token-bucket', capacity: 100, refillAmount: 10, refillPeriodMs: 1000 },
    mode: 'hard',
    onDeciderDown: 'open',
  },
];
const limits: LimitState[] = [
  {
    id: parseLimitId('burst'),
    kind: 'token-bucket',
    mode: 'hard',
    remaining: 40,
    resetMs: 6_000,
    isExceeded: false,
    hasTaken: true,
    overage: 0,
  },
];
const replayed: Extract<Decision, { kind: 'allowed' }> = {
  kind: 'allowed',
  usageId: 'u-9',
  streamId: '1-0',
  nowMs: 0,
  limits,
  shadowDenials: [],
  isReplay: true,
};
const tenant = parseTenantId('acme');
const requestId = parseEventId('i-order-7.0.abc');

/** A logger that keeps what it was told. */
function recordingLogger(): Logger & { lines: { obj: object; msg: string | undefined }[] } {
  const lines: { obj: object; msg: string | undefined }[] = [];
  const log = (obj: object, msg?: string): void => {
    lines.push({ obj, msg });
  };
  const logger = { lines, debug: log, info: log, warn: log, error: log, child: () => logger };
  return logger;
}

/** A store in memory, or one that fails every call. */
function memoryStore(): ResponseStore & { saved: Map<string, StoredResponse> } {
  const saved = new Map<string, StoredResponse>();
  return {
    saved,
    save: (input) => {
      if (saved.has(input.requestId)) return Promise.resolve('exists');
      saved.set(input.requestId, { result: input.result, storedAtMs: input.nowMs });
      return Promise.resolve('stored');
    },
    load: (input) => Promise.resolve(saved.get(input.requestId)),
  };
}
const failingStore: ResponseStore = {
  save: () => Promise.reject(new DependencyError('DYNAMODB_UNAVAILABLE', 'timeout')),
  load: () => Promise.reject(new DependencyError('DYNAMODB_UNAVAILABLE', 'timeout')),
};
const clock = { nowMs: () => 1_000 };

describe('Idempotency-Key replays', () => {
  it('sends the first response again, marked as replayed, with the limits as they are', () => {
    const stored = { result: toStoredResult({ data: { placeOrder: { id: 'o-1' } } }), storedAtMs: 5 };
    const answer = replayResponse({ decision: replayed, stored, requested: 7, specs });
    expect(answer.outcome).toBe('replayed');
    expect(answer.refusal).toBeUndefined();
    expect(answer.result).toEqual({ data: { placeOrder: { id: 'o-1' } } });
    expect(answer.headers).toEqual({
      'RateLimit-Policy': '"burst";q=100;w=10',
      RateLimit: '"burst";r=40;t=6',
      'Idempotent-Replayed': 'true',
    });
  });

  it('answers 409 while the first response is not kept, charging nothing again', () => {
    const answer = replayResponse({ decision: replayed, stored: undefined, requested: 7, specs });
    expect(answer).toMatchObject({ outcome: 'unavailable', status: 409, refusal: 'IDEMPOTENCY_KEY_REPLAYED' });
    expect(answer.headers).toMatchObject({ 'Retry-After': '1', RateLimit: '"burst";r=40;t=6' });
    expect(answer.result.errors?.[0]?.extensions).toMatchObject({
      code: 'IDEMPOTENCY_KEY_REPLAYED',
      http: { status: 409, headers: { 'Retry-After': '1' } },
    });
    expect(answer.result.extensions?.['cost']).toMatchObject({ requested: 7, actual: null, receipt: 'u-9', isReplay: true });
  });

  it('keeps the first response as the client saw it and replays it from the store', async () => {
    // given a kept response with an unexpected error
    const store = memoryStore();
    const responses = new IdempotentResponses({ store, logger: recordingLogger(), clock, ttlMs: 60_000 });
    const unexpected = new GraphQLError('connect ECONNREFUSED', { originalError: new Error('connect ECONNREFUSED') });
    await responses.save({ tenant, requestId, result: { data: { a: 1 }, errors: [unexpected] } });
    // when the retry arrives
    const answer = await responses.answer({ tenant, requestId, decision: replayed, requested: 7, specs });
    // then it gets the first response, masked
    expect(answer.outcome).toBe('replayed');
    const sent = JSON.stringify(answer.result);
    expect(sent).not.toContain('ECONNREFUSED');
    expect(JSON.parse(sent)).toMatchObject({
      data: { a: 1 },
      errors: [{ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } }],
    });
    expect(store.saved.get(requestId)?.storedAtMs).toBe(1_000);
  });

  it('reads a store that fails as "not kept" and logs its code, never throwing', async () => {
    const logger = recordingLogger();
    const responses = new IdempotentResponses({ store: failingStore, logger, clock, ttlMs: 60_000 });
    await responses.save({ tenant, requestId, result: { data: null } });
    expect((await responses.answer({ tenant, requestId, decision: replayed, requested: 7, specs })).outcome).toBe('unavailable');
    expect(logger.lines.map((line) => [line.msg, (line.obj as { code?: string }).code])).toEqual([
      ['could not keep the response for Idempotency-Key retries', 'DYNAMODB_UNAVAILABLE'],
      ['stored response unavailable', 'DYNAMODB_UNAVAILABLE'],
    ]);
    expect(await new IdempotentResponses({ logger, clock, ttlMs: 60_000 }).load({ tenant, requestId })).toBeUndefined();
  });
});

describe('request ids', () => {
  const base = { idempotencyKey: 'order-7', batchIndex: 0, query: '{ a }', operationName: 'anonymous', variables: { n: 1 } };

  it('are the same for the same key, position and operation, and differ when any of them does', () => {
    const id = operationRequestId(base);
    expect(id).toMatch(/^i-order-7\.0\.[0-9a-f]{16}$/);
    expect(operationRequestId({ ...base })).toBe(id);
    expect(operationRequestId({ ...base, batchIndex: 1 })).not.toBe(id);
    expect(operationRequestId({ ...base, variables: { n: 2 } })).not.toBe(id);
    expect(operationRequestId({ ...base, query: '{ b }' })).not.toBe(id);
  });

  it('are random without a key', () => {
    const first = operationRequestId({ ...base, idempotencyKey: null });
    expect(first).toMatch(/^r-[0-9a-f-]{36}$/);
    expect(operationRequestId({ ...base, idempotencyKey: null })).not.toBe(first);
  });

  it('accept only short lowercase keys', () => {
    expect(isIdempotencyKey('order-7.retry_1')).toBe(true);
    expect(isIdempotencyKey('Order-7')).toBe(false);
    expect(isIdempotencyKey('-order')).toBe(false);
    expect(isIdempotencyKey('a'.repeat(65))).toBe(false);
  });
});
