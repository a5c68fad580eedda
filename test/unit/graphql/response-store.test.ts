import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import { parseStoredResponse, toExecutionResult, toStoredResult } from '../../../src/graphql/index.js';

describe('stored responses of idempotent requests', () => {
  it('keeps expected errors as sent and masks unexpected ones, so nothing internal becomes replayable', () => {
    // given a result with a deliberate error (with an HTTP status) and an unexpected one from a resolver
    const expected = new GraphQLError('order o-9 does not exist', {
      path: ['cancelOrder'],
      extensions: { code: 'NOT_FOUND', http: { status: 404 } },
    });
    const unexpected = new GraphQLError('connect ECONNREFUSED 10.0.0.7:5432', {
      path: ['orders'],
      originalError: new Error('connect ECONNREFUSED 10.0.0.7:5432'),
    });
    const stored = toStoredResult({
      data: { cancelOrder: null, orders: null },
      errors: [expected, unexpected],
      extensions: { cost: { requested: 3 } },
    });
    // then the stored form is the client's: the unexpected message is gone
    expect(JSON.stringify(stored)).not.toContain('ECONNREFUSED');
    expect(stored.errors?.[0]).toMatchObject({
      message: 'order o-9 does not exist',
      path: ['cancelOrder'],
      extensions: { code: 'NOT_FOUND' },
    });
    expect(stored.errors?.[1]).toMatchObject({
      message: 'Unexpected error.',
      path: ['orders'],
      extensions: { code: 'INTERNAL_SERVER_ERROR' },
    });
  });

  it('replays to exactly the stored JSON, errors included', () => {
    const stored = toStoredResult({
      data: { placeOrder: { id: 'o-1' } },
      errors: [new GraphQLError('partial', { path: ['placeOrder', 'lines'], extensions: { code: 'X' } })],
      extensions: { cost: { requested: 21, actual: 21 } },
    });
    const replayed = toExecutionResult(stored);
    expect(replayed.errors?.[0]).toBeInstanceOf(GraphQLError);
    expect(JSON.parse(JSON.stringify(replayed))).toEqual(JSON.parse(JSON.stringify(stored)));
    // a result without data (a request error) gains no `data: null`
    expect('data' in toExecutionResult({ errors: [] })).toBe(false);
  });

  it('reads anything but its own layout as absent, never as a response', () => {
    expect(parseStoredResponse('{"v":1,"at":5,"r":{"data":{"a":1}}}')).toEqual({ result: { data: { a: 1 } }, storedAtMs: 5 });
    for (const raw of [
      '',
      'not json',
      '[]',
      '{"v":2,"at":5,"r":{}}',
      '{"v":1,"r":{}}',
      '{"v":1,"at":5,"r":{"errors":{}}}',
      '{"v":1,"at":5,"r":[]}',
    ]) {
      expect(parseStoredResponse(raw)).toBeUndefined();
    }
  });
});
