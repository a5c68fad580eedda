/**
 * Reads a limit's stored state as `lua/decide.lua` writes it (data layout v1):
 * token bucket, fixed and sliding window values are msgpack sequences of
 * integers; a period quota is a decimal counter. For tests, the dashboard and
 * operators; the hot path never reads state outside the scripts.
 */
import { InvariantError } from '../shared/index.js';

/** Decodes a sequence of msgpack integers (the only values bucket states hold). */
export function decodeMsgpackIntegers(bytes: Uint8Array): number[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const values: number[] = [];
  let at = 0;
  const need = (count: number): void => {
    if (at + count > bytes.length) throw new InvariantError('bucket state is truncated');
  };
  while (at < bytes.length) {
    const byte = view.getUint8(at);
    at += 1;
    if (byte <= 0x7f) values.push(byte);
    else if (byte >= 0xe0) values.push(byte - 0x100);
    else {
      const width = { 0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8, 0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8, 0xcb: 8 }[byte];
      if (width === undefined) throw new InvariantError(`bucket state holds msgpack type 0x${byte.toString(16)}, not an integer`);
      need(width);
      let value: number;
      switch (byte) {
        case 0xcc:
          value = view.getUint8(at);
          break;
        case 0xcd:
          value = view.getUint16(at);
          break;
        case 0xce:
          value = view.getUint32(at);
          break;
        case 0xcf:
          value = Number(view.getBigUint64(at));
          break;
        case 0xd0:
          value = view.getInt8(at);
          break;
        case 0xd1:
          value = view.getInt16(at);
          break;
        case 0xd2:
          value = view.getInt32(at);
          break;
        case 0xd3:
          value = Number(view.getBigInt64(at));
          break;
        default:
          value = view.getFloat64(at);
      }
      values.push(value);
      at += width;
    }
  }
  return values;
}

export type BucketState =
  | { kind: 'token-bucket'; tokens: number; updatedAtMs: number; remainder: number }
  | { kind: 'fixed-window'; window: number; count: number }
  | { kind: 'sliding-window'; window: number; current: number; previous: number };

/** Decodes a token bucket, fixed or sliding window state (as stored; no refill applied). */
export function decodeBucketState(kind: BucketState['kind'], bytes: Uint8Array): BucketState {
  const values = decodeMsgpackIntegers(bytes);
  const expected = kind === 'fixed-window' ? 2 : 3;
  if (values.length !== expected) throw new InvariantError(`${kind} state has ${values.length} values, expected ${expected}`);
  const [a = 0, b = 0, c = 0] = values;
  switch (kind) {
    case 'token-bucket':
      return { kind, tokens: a, updatedAtMs: b, remainder: c };
    case 'fixed-window':
      return { kind, window: a, count: b };
    case 'sliding-window':
      return { kind, window: a, current: b, previous: c };
  }
}
