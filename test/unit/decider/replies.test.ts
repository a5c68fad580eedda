import { describe, expect, it } from 'vitest';
import { decodeAppendUsage, decodeClock, decodeDecideBatch } from '../../../src/decider/replies.js';
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

describe('decodeDecideBatch', () => {
  const allowed = [0, 1_763_900_000_000, 0, 0, '1763900000000-0', 0, 2, 90, 1_000, 2, 0, 0, 4, 5_000, 2, 0, 80];
  const denied = [3, 1_763_900_000_000, 1, 250, '', 0, 1, 0, 250, 1, 3, 0];

  it('decodes one array per request, limits in order', () => {
    const [first, second] = decodeDecideBatch([allowed, denied], [2, 1]);
    expect(first).toEqual({
      kind: 0,
      nowMs: 1_763_900_000_000,
      limitIndex: 0,
      retryAfterMs: 0,
      streamId: '1763900000000-0',
      isReplay: false,
      limits: [
        { remaining: 90, resetMs: 1_000, flags: 2, overage: 0, crossed: 0 },
        { remaining: 4, resetMs: 5_000, flags: 2, overage: 0, crossed: 80 },
      ],
    });
    expect(second).toMatchObject({
      kind: 3,
      limitIndex: 1,
      retryAfterMs: 250,
      streamId: '',
      limits: [{ remaining: 0, flags: 1, overage: 3 }],
    });
  });

  it('accepts a replay decided under another plan (another limit count), and nothing else with a wrong count', () => {
    const replay = [...allowed];
    replay[5] = 1;
    expect(decodeDecideBatch([replay], [3])[0]?.isReplay).toBe(true);
    expect(() => decodeDecideBatch([allowed], [3])).toThrow(/limit count 3/);
  });

  it('rejects every malformed shape with an InvariantError', () => {
    const bad: [unknown, number[]][] = [
      ['nope', [1]],
      [[allowed], [2, 1]],
      [[allowed.slice(0, -1)], [2]],
      [[[...allowed, 0]], [2]],
      [[[9, ...allowed.slice(1)]], [2]],
      [[[0, 1.5, ...allowed.slice(2)]], [2]],
      [[[0, 1, 3, ...allowed.slice(3)]], [2]],
      [[[0, 1, 0, 0, 7, ...allowed.slice(5)]], [2]],
      [[denied.map((value, index) => (index === 5 ? 2 : value))], [1]],
    ];
    for (const [reply, counts] of bad) expect(() => decodeDecideBatch(reply, counts), JSON.stringify(reply)).toThrow(InvariantError);
  });
});
