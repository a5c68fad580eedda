import { describe, expect, it } from 'vitest';
import { decodeAppendUsage, decodeClock } from '../../../src/decider/index.js';
import { InvariantError } from '../../../src/shared/index.js';

describe('decodeAppendUsage', () => {
  it('decodes a well-formed reply', () => {
    expect(decodeAppendUsage([1, 1_795_000_000_123, '1795000000123-0'])).toEqual({
      isNew: true,
      nowMs: 1_795_000_000_123,
      streamId: '1795000000123-0',
    });
    expect(decodeAppendUsage([0, 5, Buffer.from('5-1')]).isNew).toBe(false);
  });

  it.each([
    ['not an array', 'OK'],
    ['too short', [1, 2]],
    ['a flag other than 0|1', [2, 1, '1-0']],
    ['a float clock', [1, 1.5, '1-0']],
    ['a non-stream id', [1, 1, 'abc']],
    ['a numeric id', [1, 1, 7]],
  ])('throws InvariantError for %s', (_, reply) => {
    expect(() => decodeAppendUsage(reply)).toThrow(InvariantError);
  });
});

describe('decodeClock', () => {
  it('decodes {nowMs} and rejects anything else', () => {
    expect(decodeClock([42])).toEqual({ nowMs: 42 });
    expect(() => decodeClock([])).toThrow(InvariantError);
    expect(() => decodeClock(['42'])).toThrow(InvariantError);
  });
});
