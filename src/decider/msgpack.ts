/**
 * The msgpack subset decide.lua's packed argument uses (Redis Lua decodes it in C with
 * `cmsgpack.unpack`): arrays, strings and non-negative integers below 2^53. `PackWriter`
 * encodes straight into one reusable buffer; `unpackMsgpack` reads the same subset back
 * (tests, tools).
 */
import { InvariantError } from '../shared/index.js';

const INITIAL_BYTES = 64 * 1024;

/** Encodes one msgpack value at a time into a growing buffer. Reusable: `reset()` keeps the memory. */
export class PackWriter {
  protected buffer: Buffer;
  protected at = 0;

  /** `initialBytes`: the buffer's first size (it doubles when a value does not fit). */
  constructor(initialBytes = INITIAL_BYTES) {
    this.buffer = Buffer.allocUnsafe(initialBytes);
  }

  reset(): void {
    this.at = 0;
  }

  /** A copy of what was written (the buffer itself is reused). */
  toBuffer(): Buffer {
    return Buffer.from(this.buffer.subarray(0, this.at));
  }

  /** Bytes written since `reset()`. */
  get length(): number {
    return this.at;
  }

  protected room(bytes: number): void {
    if (this.at + bytes <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.at + bytes));
    this.buffer.copy(grown, 0, 0, this.at);
    this.buffer = grown;
  }

  /** Reserves an array header of 32-bit length (0xdd); answers where, for `arrayLength`. */
  arrayStart(): number {
    this.room(5);
    const where = this.at;
    this.buffer[where] = 0xdd;
    this.at += 5;
    return where;
  }

  /** Writes the length of the array whose header `arrayStart` reserved at `where`. */
  arrayLength(where: number, length: number): void {
    this.buffer.writeUInt32BE(length, where + 1);
  }

  /** A non-negative integer below 2^53, in the shortest form. */
  uint(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new InvariantError(`msgpack: ${value} is not a non-negative safe integer`);
    this.room(9);
    const b = this.buffer;
    if (value < 0x80) b[this.at++] = value;
    else if (value < 0x100) {
      b[this.at++] = 0xcc;
      b[this.at++] = value;
    } else if (value < 0x10000) {
      b[this.at] = 0xcd;
      b.writeUInt16BE(value, this.at + 1);
      this.at += 3;
    } else if (value < 0x100000000) {
      b[this.at] = 0xce;
      b.writeUInt32BE(value, this.at + 1);
      this.at += 5;
    } else {
      b[this.at] = 0xcf;
      b.writeUInt32BE(Math.floor(value / 0x100000000), this.at + 1);
      b.writeUInt32BE(value >>> 0, this.at + 5);
      this.at += 9;
    }
  }

  /** A string, UTF-8. */
  str(value: string): void {
    // ids and names are ASCII: written in one pass, assuming one byte per character (header first), checked after
    const length = value.length;
    this.room(5 + 3 * length);
    const start = this.at;
    this.strHeader(length);
    const b = this.buffer;
    const at = this.at;
    let high = 0;
    for (let index = 0; index < length; index += 1) {
      const code = value.charCodeAt(index);
      high |= code;
      b[at + index] = code;
    }
    if (high < 0x80) {
      this.at = at + length;
      return;
    }
    // a multi-byte character: the header counts bytes
    const bytes = Buffer.byteLength(value, 'utf8');
    this.at = start;
    this.strHeader(bytes);
    this.at += this.buffer.write(value, this.at, 'utf8');
  }

  private strHeader(bytes: number): void {
    const b = this.buffer;
    if (bytes < 32) b[this.at++] = 0xa0 | bytes;
    else if (bytes < 0x100) {
      b[this.at++] = 0xd9;
      b[this.at++] = bytes;
    } else if (bytes < 0x10000) {
      b[this.at] = 0xda;
      b.writeUInt16BE(bytes, this.at + 1);
      this.at += 3;
    } else {
      b[this.at] = 0xdb;
      b.writeUInt32BE(bytes, this.at + 1);
      this.at += 5;
    }
  }
}

/** A value of the subset: a string, a non-negative integer, or an array of them. */
export type Packed = string | number | Packed[];

/**
 * Decodes one value of the subset `PackWriter` writes (and positive fixint/uint forms of any length).
 * @throws InvariantError on anything else, or trailing bytes
 */
export function unpackMsgpack(bytes: Uint8Array): Packed {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const read = (): Packed => {
    const tag = buffer[at++];
    if (tag === undefined) throw new InvariantError('msgpack: truncated');
    if (tag < 0x80) return tag;
    if ((tag & 0xf0) === 0x90) return readArray(tag & 0x0f);
    if ((tag & 0xe0) === 0xa0) return readStr(tag & 0x1f);
    switch (tag) {
      case 0xcc:
        return buffer.readUInt8(at++);
      case 0xcd:
        return ((at += 2), buffer.readUInt16BE(at - 2));
      case 0xce:
        return ((at += 4), buffer.readUInt32BE(at - 4));
      case 0xcf:
        return ((at += 8), buffer.readUInt32BE(at - 8) * 0x100000000 + buffer.readUInt32BE(at - 4));
      case 0xd9:
        return readStr(buffer.readUInt8(at++));
      case 0xda:
        return ((at += 2), readStr(buffer.readUInt16BE(at - 2)));
      case 0xdb:
        return ((at += 4), readStr(buffer.readUInt32BE(at - 4)));
      case 0xdc:
        return ((at += 2), readArray(buffer.readUInt16BE(at - 2)));
      case 0xdd:
        return ((at += 4), readArray(buffer.readUInt32BE(at - 4)));
      default:
        throw new InvariantError(`msgpack: unsupported type 0x${tag.toString(16)}`);
    }
  };
  const readStr = (length: number): string => {
    if (at + length > buffer.length) throw new InvariantError('msgpack: truncated');
    at += length;
    return buffer.toString('utf8', at - length, at);
  };
  const readArray = (length: number): Packed[] => Array.from({ length }, read);
  const value = read();
  if (at !== buffer.length) throw new InvariantError('msgpack: trailing bytes');
  return value;
}
