/**
 * Decoders for script replies. A reply of the wrong shape is an
 * InvariantError: the script and this code disagree, which must never pass
 * silently into a billing decision.
 */
import { InvariantError } from '../shared/index.js';
import type { RawDecision } from './model/limits.js';

/** Reads one script's replies: a value of the wrong shape is an InvariantError naming the script. */
class ReplyReader {
  constructor(private readonly script: string) {}

  fail(reply: unknown, why: string): never {
    throw new InvariantError(`${this.script} reply ${why}: ${JSON.stringify(reply)?.slice(0, 200)}`);
  }

  integerAt(reply: unknown[], index: number): number {
    const value = reply[index];
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) this.fail(reply, `[${index}] is not an integer`);
    return value;
  }

  stringAt(reply: unknown[], index: number): string {
    const value = reply[index];
    if (typeof value === 'string') return value;
    if (Buffer.isBuffer(value)) return value.toString('utf8');
    return this.fail(reply, `[${index}] is not a string`);
  }
}

// annotated: TypeScript narrows through a `never` method only on explicitly typed references
const APPEND_USAGE: ReplyReader = new ReplyReader('append-usage');
const CLOCK: ReplyReader = new ReplyReader('clock');
const DECIDE: ReplyReader = new ReplyReader('decide');
const SETTLE: ReplyReader = new ReplyReader('settle');

/** Result of `append-usage.lua`. */
export interface AppendUsageResult {
  /** False when an earlier call already appended this event id. */
  isNew: boolean;
  /** Redis `TIME` when the script ran, in ms since the epoch. */
  nowMs: number;
  /** Stream entry id of the (first) append. */
  streamId: string;
}

/** @throws InvariantError when the reply is not `{0|1, nowMs, streamId}` */
export function decodeAppendUsage(reply: unknown): AppendUsageResult {
  if (!Array.isArray(reply) || reply.length !== 3) APPEND_USAGE.fail(reply, 'is not a 3-element array');
  const isNew = APPEND_USAGE.integerAt(reply, 0);
  if (isNew !== 0 && isNew !== 1) APPEND_USAGE.fail(reply, '[0] is not 0|1');
  const streamId = APPEND_USAGE.stringAt(reply, 2);
  if (!/^\d+-\d+$/.test(streamId)) APPEND_USAGE.fail(reply, '[2] is not a stream id');
  return { isNew: isNew === 1, nowMs: APPEND_USAGE.integerAt(reply, 1), streamId };
}

/** @throws InvariantError when the reply is not `{nowMs}` */
export function decodeClock(reply: unknown): { nowMs: number } {
  if (!Array.isArray(reply) || reply.length !== 1) CLOCK.fail(reply, 'is not a 1-element array');
  return { nowMs: CLOCK.integerAt(reply, 0) };
}

/**
 * Reads decide.lua's packed replies (msgpack arrays of integers and strings, as `cmsgpack` writes them) straight from
 * the reply's buffers: no intermediate array per value, one object per decision.
 */
class PackedReader {
  private bytes: Buffer = Buffer.alloc(0);
  private at = 0;

  reset(bytes: Buffer): void {
    this.bytes = bytes;
    this.at = 0;
  }

  fail(why: string): never {
    throw new InvariantError(`decide reply ${why}: ${this.bytes.toString('hex').slice(0, 200)}`);
  }

  private need(count: number): void {
    if (this.at + count > this.bytes.length) this.fail('is truncated');
  }

  arrayLength(): number {
    this.need(1);
    const tag = this.bytes[this.at++] as number;
    if ((tag & 0xf0) === 0x90) return tag & 0x0f;
    if (tag === 0xdc) {
      this.need(2);
      this.at += 2;
      return this.bytes.readUInt16BE(this.at - 2);
    }
    return this.fail(`holds 0x${tag.toString(16)} where an array was expected`);
  }

  integer(): number {
    this.need(1);
    const bytes = this.bytes;
    const tag = bytes[this.at++] as number;
    if (tag < 0x80) return tag;
    if (tag >= 0xe0) return tag - 0x100;
    const width = tag === 0xcc || tag === 0xd0 ? 1 : tag === 0xcd || tag === 0xd1 ? 2 : tag === 0xce || tag === 0xd2 ? 4 : 8;
    this.need(width);
    const at = this.at;
    this.at += width;
    let value: number;
    switch (tag) {
      case 0xcc:
        return bytes.readUInt8(at);
      case 0xcd:
        return bytes.readUInt16BE(at);
      case 0xce:
        return bytes.readUInt32BE(at);
      case 0xcf:
        value = bytes.readUInt32BE(at) * 0x100000000 + bytes.readUInt32BE(at + 4);
        break;
      case 0xd0:
        return bytes.readInt8(at);
      case 0xd1:
        return bytes.readInt16BE(at);
      case 0xd2:
        return bytes.readInt32BE(at);
      case 0xd3:
        value = bytes.readInt32BE(at) * 0x100000000 + bytes.readUInt32BE(at + 4);
        break;
      case 0xcb:
        value = bytes.readDoubleBE(at);
        break;
      default:
        return this.fail(`holds 0x${tag.toString(16)} where an integer was expected`);
    }
    if (!Number.isSafeInteger(value)) this.fail(`holds ${value} where an integer was expected`);
    return value;
  }

  /** Reads a string and tells whether it is `expected`, without making a string of it when `expected` is ASCII. */
  stringEquals(expected: string): boolean {
    const length = this.stringLength();
    const at = this.at;
    this.at += length;
    for (let index = 0; index < expected.length; index += 1) {
      const code = expected.charCodeAt(index);
      if (code >= 0x80) return this.bytes.toString('utf8', at, at + length) === expected;
      // an ASCII character differs from the byte at its place: the UTF-8 strings differ
      if (index >= length || this.bytes[at + index] !== code) return false;
    }
    return length === expected.length;
  }

  string(): string {
    const length = this.stringLength();
    this.at += length;
    return this.bytes.toString('utf8', this.at - length, this.at);
  }

  /** Reads a string's header and checks its bytes are there; answers its length (`at` on its first byte). */
  private stringLength(): number {
    this.need(1);
    const tag = this.bytes[this.at++] as number;
    let length: number;
    if ((tag & 0xe0) === 0xa0) length = tag & 0x1f;
    else if (tag === 0xd9) {
      this.need(1);
      length = this.bytes[this.at++] as number;
    } else if (tag === 0xda) {
      this.need(2);
      length = this.bytes.readUInt16BE(this.at);
      this.at += 2;
    } else return this.fail(`holds 0x${tag.toString(16)} where a string was expected`);
    this.need(length);
    return length;
  }
}

const PACKED = new PackedReader();

/** Fields of a packed decision before its limits: kind, nowMs, limitIndex, retryAfterMs, streamId, isReplay, nLimits. */
const HEAD = 7;

/**
 * Decodes one packed decision into `into` (its fields and limit objects overwritten, new ones made only when it has
 * fewer); `isStored`: an earlier call's record (a replay unless `attempt` is its own token).
 */
function decodeOne(bytes: unknown, expected: { count: number; isStored: boolean; attempt: string }, into: RawDecision): void {
  if (!Buffer.isBuffer(bytes)) return DECIDE.fail(bytes, 'holds a decision that is not a packed string');
  const { count: expectedCount, isStored, attempt } = expected;
  const reader = PACKED;
  reader.reset(bytes);
  const length = reader.arrayLength();
  const kind = reader.integer();
  if (kind !== 0 && kind !== 1 && kind !== 2 && kind !== 3) return reader.fail('holds no decision kind');
  const nowMs = reader.integer();
  const limitIndex = reader.integer();
  const retryAfterMs = reader.integer();
  const streamId = reader.string();
  if (reader.integer() !== 0) reader.fail('holds a decision stored as a replay');
  const count = reader.integer();
  // A replay carries the limits of the first decision, which a plan change may have altered.
  if (count < 0 || count > 64 || (!isStored && count !== expectedCount)) reader.fail(`does not hold the limit count ${expectedCount}`);
  const isAdmitted = kind === 0 || kind === 1;
  // an admitted decision ends with its attempt token (a record from before argument layout 3 has none)
  if (length !== HEAD + 5 * count + (isAdmitted ? 1 : 0) && !(isStored && length === HEAD + 5 * count)) {
    reader.fail(`has ${length} elements for ${count} limits`);
  }
  if (limitIndex < 0 || limitIndex > count) reader.fail('names no limit');
  const limits = into.limits;
  limits.length = count;
  for (let index = 0; index < count; index += 1) {
    const limit = (limits[index] ??= { remaining: 0, resetMs: 0, flags: 0, overage: 0, crossed: 0 });
    limit.remaining = reader.integer();
    limit.resetMs = reader.integer();
    limit.flags = reader.integer();
    limit.overage = reader.integer();
    limit.crossed = reader.integer();
  }
  // a stored record is the caller's own first decision only when it holds the caller's own attempt token
  const isOwn = length > HEAD + 5 * count && attempt !== '-' && reader.stringEquals(attempt);
  into.kind = kind;
  into.nowMs = nowMs;
  into.limitIndex = limitIndex;
  into.retryAfterMs = retryAfterMs;
  into.streamId = streamId;
  into.isReplay = isStored && !isOwn;
}

/** A decision to decode into: fresh limit objects are added as needed. */
const emptyRaw = (): RawDecision => ({ kind: 0, nowMs: 0, limitIndex: 0, retryAfterMs: 0, streamId: '', isReplay: false, limits: [] });

/** Checks decide.lua's reply is `{marks, one packed decision per request}` for `count` requests; answers the marks. */
function decideMarks(reply: unknown, count: number): { reply: unknown[]; marks: Buffer } {
  if (!Array.isArray(reply)) DECIDE.fail(reply, 'is not an array');
  if (reply.length !== count + 1) DECIDE.fail(reply, `has ${reply.length - 1} decisions for ${count} requests`);
  const marks: unknown = reply[0];
  if (!Buffer.isBuffer(marks) || marks.length !== count) DECIDE.fail(reply, 'has no mark per request');
  return { reply, marks };
}

/** A mark of decide.lua's reply: `s` an earlier call's record, `n` decided now. */
function isStoredMark(reply: unknown, marks: Buffer, position: number): boolean {
  const mark = marks[position];
  if (mark !== 0x6e && mark !== 0x73) DECIDE.fail(reply, `marks request ${position} with neither n nor s`);
  return mark === 0x73;
}

/**
 * Decodes the reply of `decide.lua` (`{marks, packed decision per request}`, its header) for a batch whose requests
 * carry `limitCounts[i]` limits each and were sent with the attempt tokens `attempts` (`-` for each when none).
 * @throws InvariantError when the reply does not have exactly that shape
 */
export function decodeDecideBatch(reply: unknown, limitCounts: readonly number[], attempts?: readonly string[]): RawDecision[] {
  const checked = decideMarks(reply, limitCounts.length);
  const decisions = new Array<RawDecision>(limitCounts.length);
  for (let position = 0; position < limitCounts.length; position += 1) {
    const raw = emptyRaw();
    const isStored = isStoredMark(reply, checked.marks, position);
    decodeOne(checked.reply[position + 1], { count: limitCounts[position] as number, isStored, attempt: attempts?.[position] ?? '-' }, raw);
    decisions[position] = raw;
  }
  return decisions;
}

/** What `mapDecideBatch` needs of each request of the batch. */
export interface DecodedMember {
  /** The request's number of limits. */
  readonly count: number;
  /** The attempt token it was sent with (`-`: none). */
  readonly attempt: string;
}

/** The one decision `mapDecideBatch` decodes into (it runs to its end synchronously). */
const SCRATCH: RawDecision = emptyRaw();

/**
 * `decodeDecideBatch`, each decision handed to `map` as it is read and the results answered: the decision passed is
 * ONE object reused for every request (no object per request, no array per decision), so `map` must copy what it
 * keeps out of it.
 * @throws InvariantError when the reply does not have exactly that shape
 */
export function mapDecideBatch<T>(reply: unknown, members: readonly DecodedMember[], map: (raw: RawDecision, position: number) => T): T[] {
  const checked = decideMarks(reply, members.length);
  const results = new Array<T>(members.length);
  for (let position = 0; position < members.length; position += 1) {
    const member = members[position] as DecodedMember;
    const isStored = isStoredMark(reply, checked.marks, position);
    decodeOne(checked.reply[position + 1], { count: member.count, isStored, attempt: member.attempt }, SCRATCH);
    results[position] = map(SCRATCH, position);
  }
  return results;
}

/** Result of `settle.lua`. */
export interface SettleResult {
  /** settled now; replay of an earlier settle; unknown request (never admitted or expired): nothing changed. */
  status: 'settled' | 'replay' | 'unknown';
  nowMs: number;
  /** Stream id of the usage.settled event ('' when unknown). */
  streamId: string;
  /** requested − actual: positive refunded, negative an overrun taken. */
  refund: number;
}

/** @throws InvariantError when the reply is not `{status, nowMs, streamId, refund}` */
export function decodeSettle(reply: unknown): SettleResult {
  if (!Array.isArray(reply) || reply.length !== 4) SETTLE.fail(reply, 'is not a 4-element array');
  const status = SETTLE.integerAt(reply, 0);
  if (status !== 0 && status !== 1 && status !== 2) SETTLE.fail(reply, '[0] is not a settle status');
  return {
    status: status === 1 ? 'settled' : status === 2 ? 'replay' : 'unknown',
    nowMs: SETTLE.integerAt(reply, 1),
    streamId: SETTLE.stringAt(reply, 2),
    refund: SETTLE.integerAt(reply, 3),
  };
}
