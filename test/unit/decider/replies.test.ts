import { describe, expect, it } from 'vitest';
import { decodeAppendUsage, decodeClock, decodeDecideBatch, mapDecideBatch } from '../../../src/decider/replies.js';
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

/** Packs an array of integers and strings as cmsgpack does (the smallest integer form, negatives signed). */
function pack(values: readonly (number | string)[]): Buffer {
  const parts: Buffer[] = [
    values.length < 16 ? Buffer.from([0x90 | values.length]) : Buffer.from([0xdc, values.length >> 8, values.length & 0xff]),
  ];
  for (const value of values) {
    if (typeof value === 'string') {
      const bytes = Buffer.from(value, 'utf8');
      parts.push(bytes.length < 32 ? Buffer.from([0xa0 | bytes.length]) : Buffer.from([0xd9, bytes.length]), bytes);
    } else if (value >= 0 && value < 0x80) parts.push(Buffer.from([value]));
    else if (value < 0 && value >= -32) parts.push(Buffer.from([0x100 + value]));
    else if (value < 0) {
      const bytes = Buffer.alloc(5);
      bytes.writeUInt8(0xd2);
      bytes.writeInt32BE(value, 1);
      parts.push(bytes);
    } else if (value <= 0xffff) parts.push(Buffer.from([0xcd, value >> 8, value & 0xff]));
    else if (value <= 0xffffffff) {
      const bytes = Buffer.alloc(5);
      bytes.writeUInt8(0xce);
      bytes.writeUInt32BE(value, 1);
      parts.push(bytes);
    } else {
      const bytes = Buffer.alloc(9);
      bytes.writeUInt8(0xcf);
      bytes.writeBigUInt64BE(BigInt(value), 1);
      parts.push(bytes);
    }
  }
  return Buffer.concat(parts);
}

/** decide.lua's reply: the marks, then each packed decision. */
const reply = (marks: string, ...decisions: (readonly (number | string)[])[]): unknown[] => [Buffer.from(marks), ...decisions.map(pack)];

describe('decodeDecideBatch', () => {
  const allowed = [0, 1_763_900_000_000, 0, 0, '1763900000000-0', 0, 2, 90, 1_000, 2, 0, 0, 4, 5_000, 2, 0, 80, 'tok.1'];
  const denied = [3, 1_763_900_000_000, 1, 250, '', 0, 1, 0, 250, 1, 3, 0];

  it('decodes one packed decision per request, limits in order', () => {
    const [first, second] = decodeDecideBatch(reply('nn', allowed, denied), [2, 1], ['tok.1', 'tok.2']);
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
      isReplay: false,
      limits: [{ remaining: 0, flags: 1, overage: 3 }],
    });
    const never = [...denied];
    never[3] = -1;
    expect(decodeDecideBatch(reply('n', never), [1])[0]?.retryAfterMs).toBe(-1);
  });

  it('tells a stored record of the same attempt (its own first decision) from a replay', () => {
    expect(decodeDecideBatch(reply('s', allowed), [2], ['tok.1'])[0]?.isReplay).toBe(false);
    expect(decodeDecideBatch(reply('s', allowed), [2], ['tok.2'])[0]?.isReplay).toBe(true);
    // no attempt token ('-'), or a record without one, is always a replay
    expect(decodeDecideBatch(reply('s', [...allowed.slice(0, -1), '-']), [2])[0]?.isReplay).toBe(true);
    expect(decodeDecideBatch(reply('s', allowed.slice(0, -1)), [2], ['tok.1'])[0]?.isReplay).toBe(true);
    // a settled record: the settlement follows the decision
    const settled = [Buffer.from('s'), Buffer.concat([pack(allowed), pack([1_763_900_000_001, '1763900000001-0', 3])])];
    expect(decodeDecideBatch(settled, [2], ['tok.9'])[0]).toMatchObject({ kind: 0, isReplay: true, streamId: '1763900000000-0' });
  });

  it('accepts a replay decided under another plan (another limit count), and nothing else with a wrong count', () => {
    expect(decodeDecideBatch(reply('s', allowed), [3], ['x'])[0]?.isReplay).toBe(true);
    expect(() => decodeDecideBatch(reply('n', allowed), [3])).toThrow(/limit count 3/);
  });

  it('rejects every malformed shape with an InvariantError', () => {
    const bad: [unknown, number[]][] = [
      ['nope', [1]],
      [[allowed], [2]],
      [reply('n', allowed), [2, 1]],
      [reply('nn', allowed), [2]],
      [reply('x', allowed), [2]],
      [reply('n', allowed.slice(0, -2)), [2]],
      [reply('n', [...allowed, 0]), [2]],
      [reply('n', [9, ...allowed.slice(1)]), [2]],
      [reply('n', [0, 1, 3, ...allowed.slice(3)]), [2]],
      [reply('n', [0, 1, 0, 0, 7, ...allowed.slice(5)]), [2]],
      [
        reply(
          'n',
          denied.map((value, index) => (index === 5 ? 1 : value)),
        ),
        [1],
      ],
      [[Buffer.from('n'), pack(denied).subarray(0, 6)], [1]],
      [[Buffer.from('n'), Buffer.concat([Buffer.from([0x9c, 0xcb]), Buffer.alloc(8, 0x3f)])], [1]],
    ];
    for (const [value, counts] of bad) {
      expect(() => decodeDecideBatch(value, counts), JSON.stringify(value)).toThrow(InvariantError);
      const members = counts.map((count) => ({ count, attempt: '-' }));
      expect(() => mapDecideBatch(value, members, (raw) => raw.kind), JSON.stringify(value)).toThrow(InvariantError);
    }
  });
});

describe('mapDecideBatch', () => {
  const allowed = [0, 1_763_900_000_000, 0, 0, '1763900000000-0', 0, 2, 90, 1_000, 2, 0, 0, 4, 5_000, 2, 0, 80, 'tok.1'];
  const denied = [3, 1_763_900_000_000, 1, 250, '', 0, 1, 0, 250, 1, 3, 0];

  it('hands each decision to map as decodeDecideBatch reads it, in one reused object of as many limits as it holds', () => {
    const value = reply('nnsn', allowed, denied, allowed, [...allowed.slice(0, -1), 'tok.4']);
    const counts = [2, 1, 2, 2];
    const attempts = ['tok.1', 'tok.2', 'tok.3', 'tok.4'];
    const seen: unknown[] = [];
    const kinds = mapDecideBatch(
      value,
      counts.map((count, index) => ({ count, attempt: attempts[index] as string })),
      (raw, position) => {
        seen.push(raw);
        return `${position}:${raw.kind}:${raw.limits.length}:${JSON.stringify(raw)}`;
      },
    );
    expect(kinds).toEqual(
      decodeDecideBatch(value, counts, attempts).map(
        (raw, position) => `${position}:${raw.kind}:${raw.limits.length}:${JSON.stringify(raw)}`,
      ),
    );
    // request 2 is a stored record of another attempt: a replay
    expect(kinds[2]).toContain('"isReplay":true');
    expect(new Set(seen).size).toBe(1);
  });

  it('tells its own attempt from another by the token, ASCII or not', () => {
    const stored = (token: string): unknown[] => reply('s', [...allowed.slice(0, -1), token]);
    const isReplay = (token: string, attempt: string): boolean[] =>
      mapDecideBatch(stored(token), [{ count: 2, attempt }], (raw) => raw.isReplay);
    expect(isReplay('tok.1', 'tok.1')).toEqual([false]);
    expect(isReplay('tok.1', 'tok.12')).toEqual([true]);
    expect(isReplay('tok.12', 'tok.1')).toEqual([true]);
    expect(isReplay('tök', 'tök')).toEqual([false]);
    expect(isReplay('é', '\u00c3\u00a9')).toEqual([true]);
    expect(isReplay('tok.1', '-')).toEqual([true]);
  });
});
