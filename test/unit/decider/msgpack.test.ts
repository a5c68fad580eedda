import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PackWriter, unpackMsgpack, type Packed } from '../../../src/decider/msgpack.js';

function pack(values: Packed[]): Buffer {
  const writer = new PackWriter();
  const array = writer.arrayStart();
  for (const value of values) {
    if (typeof value === 'number') writer.uint(value);
    else if (typeof value === 'string') writer.str(value);
  }
  writer.arrayLength(array, values.length);
  return writer.toBuffer();
}

describe('PackWriter', () => {
  it('round-trips integers at every width boundary and strings of every length class, ASCII or not', () => {
    const values: Packed[] = [0, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, '', 'a'.repeat(31), 'b'.repeat(32)];
    // a multi-byte character moving the byte length into the next header class (31 characters, 32 bytes; 255, 256)
    values.push('a'.repeat(30) + 'é', 'f'.repeat(254) + 'é');
    values.push('c'.repeat(255), 'd'.repeat(256), 'e'.repeat(70_000), 'ünïcödé ✓', 'x'.repeat(40) + 'é');
    expect(unpackMsgpack(pack(values))).toEqual(values);
  });

  it('round-trips any array of safe non-negative integers and strings, reusing its buffer across resets', () => {
    const writer = new PackWriter();
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.maxSafeNat(), fc.string({ unit: 'grapheme', maxLength: 300 }))), (values) => {
        writer.reset();
        const array = writer.arrayStart();
        for (const value of values) {
          if (typeof value === 'number') writer.uint(value);
          else writer.str(value);
        }
        writer.arrayLength(array, values.length);
        expect(unpackMsgpack(writer.toBuffer())).toEqual(values);
      }),
    );
  });

  it('refuses a negative, fractional or unsafe integer', () => {
    const writer = new PackWriter();
    for (const bad of [-1, 1.5, 2 ** 53, Number.NaN]) expect(() => writer.uint(bad)).toThrow(/not a non-negative safe integer/);
  });
});
