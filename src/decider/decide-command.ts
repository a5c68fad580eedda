/**
 * decide.lua's call as ONE pre-encoded Redis command (issue 16, client side). The whole `EVALSHA sha numkeys
 * ...keys packed` is written in RESP straight into one reused buffer while the batch is compiled, and copied
 * once into a buffer of its exact size, the command's own (a cluster redirect or the EVAL fallback sends it
 * again after later batches reused the scratch). ioredis sends it as it stands: its `Command` formats no
 * argument and copies nothing.
 *
 * What ioredis' `defineCommand` did for us, kept here: NOSCRIPT (after SCRIPT FLUSH, a restart or a failover:
 * the script did not run) sends the same call once more as `EVAL` (which loads the script); on Redis Cluster the
 * command names the batch's slot by one of its keys (every key of a batch has one hash tag), so ioredis routes it
 * and follows MOVED and ASK as for any command. Timeouts, the missing offline queue and the absent resend after
 * a reconnect are the connection's, unchanged (`redis.ts`).
 */
import { createHash } from 'node:crypto';
import { Command, type Cluster, type Redis } from 'ioredis';
import { ValidationError } from '../shared/index.js';
import { packBatch, type BatchMember } from './decide-args.js';
import { PackWriter } from './msgpack.js';
import { redisErrorPrefix } from './redis-errors.js';
import { readScript } from './scripts.js';

/** A Lua script as a command sends it: its source (EVAL, after NOSCRIPT) and its SHA1 (EVALSHA). */
export interface ScriptSource {
  readonly lua: Buffer;
  readonly sha: string;
}

/** A script's source and SHA1 (the SHA Redis names it by: of its UTF-8 bytes). */
export function scriptSource(lua: string): ScriptSource {
  const bytes = Buffer.from(lua, 'utf8');
  return { lua: bytes, sha: createHash('sha1').update(bytes).digest('hex') };
}

/** `lua/decide.lua`. */
export const DECIDE_SCRIPT: ScriptSource = scriptSource(readScript('decide.lua'));

/** One decide.lua call, encoded. */
export interface DecideCall {
  /** The whole `EVALSHA` command in RESP, its own buffer. */
  readonly wire: Buffer;
  /** Length of the RESP array header (`*<n>\r\n`) at the start of `wire`. */
  readonly arrayHeaderLength: number;
  /** Where the arguments after the SHA (`numkeys`, the keys, the packed batch) start in `wire`: EVAL shares them. */
  readonly argumentsAt: number;
  /** A key of the batch: its slot is the call's (every key of a batch carries one hash tag on Redis Cluster). */
  readonly slotKey: string;
}

const CR = 0x0d;
const LF = 0x0a;
/** Room left before the packed batch for its bulk header `$<length>\r\n` (a length below 2^32: at most 13 bytes). */
const PACKED_HEADER_ROOM = 16;

/** Node's own UTF-8 copy, what `buffer.write(value, offset)` calls after checking its arguments (undocumented: used only when present). */
interface NativeUtf8 {
  write: Buffer['write'];
  utf8Write?: (this: Buffer, value: string, offset: number) => number;
}
const NATIVE: NativeUtf8 = Buffer.alloc(0);
const nativeUtf8Write = NATIVE.utf8Write;

/** Writes `value` as UTF-8 at `offset` (the buffer has room for 3 bytes per character); answers the bytes written. */
function writeUtf8(buffer: Buffer, value: string, offset: number): number {
  return nativeUtf8Write === undefined ? buffer.write(value, offset, 'utf8') : nativeUtf8Write.call(buffer, value, offset);
}

/** A `PackWriter` that also writes RESP (the command around the packed batch). */
class CommandWriter extends PackWriter {
  /** Protocol text (ASCII only). */
  text(value: string): void {
    this.room(value.length);
    const b = this.buffer;
    for (let index = 0; index < value.length; index += 1) b[this.at + index] = value.charCodeAt(index);
    this.at += value.length;
  }

  /** A non-negative integer in decimal and `\r\n`, without a string. */
  decimalLine(value: number): void {
    let digits = 1;
    for (let rest = value; rest >= 10; rest = Math.floor(rest / 10)) digits += 1;
    this.room(digits + 2);
    const b = this.buffer;
    let rest = value;
    for (let index = digits - 1; index >= 0; index -= 1) {
      b[this.at + index] = 0x30 + (rest % 10);
      rest = Math.floor(rest / 10);
    }
    this.at += digits;
    b[this.at++] = CR;
    b[this.at++] = LF;
  }

  /**
   * A RESP bulk string of the UTF-8 bytes of `head + tail` (a key in its two halves), without joining them. Keys are
   * ASCII: the header counts characters, and each half is copied by one native write (a half built by concatenation
   * is flattened there once: the tenant's prefix serves all of a request's keys). A multi-byte character writes more
   * bytes than characters: the key is then written again after a header of its byte length.
   */
  key(head: string, tail: string): void {
    const length = head.length + tail.length;
    const start = this.at;
    this.room(3 * length + 16);
    this.buffer[this.at++] = 0x24; // $
    this.decimalLine(length);
    const b = this.buffer;
    const headBytes = writeUtf8(b, head, this.at);
    const tailBytes = tail.length === 0 ? 0 : writeUtf8(b, tail, this.at + headBytes);
    if (headBytes + tailBytes === length) {
      this.at += length;
    } else {
      const whole = head + tail;
      this.at = start;
      this.buffer[this.at++] = 0x24;
      this.decimalLine(Buffer.byteLength(whole, 'utf8'));
      this.at += writeUtf8(this.buffer, whole, this.at);
    }
    this.buffer[this.at++] = CR;
    this.buffer[this.at++] = LF;
  }

  /** Leaves `bytes` unwritten (filled or skipped by `finish`). */
  skip(bytes: number): void {
    this.room(bytes);
    this.at += bytes;
  }

  /**
   * The command in a buffer of its own: what was written before `gapAt`, then the bulk header of the value
   * written from `valueAt` on (the gap between holds nothing), the value and `\r\n`.
   */
  finish(gapAt: number, valueAt: number): Buffer {
    const valueLength = this.at - valueAt;
    this.room(2);
    this.buffer[this.at++] = CR;
    this.buffer[this.at++] = LF;
    const header = `$${valueLength}\r\n`;
    const headerAt = valueAt - header.length;
    this.buffer.write(header, headerAt, 'latin1');
    const wire = Buffer.allocUnsafe(gapAt + (this.at - headerAt));
    this.buffer.copy(wire, 0, 0, gapAt);
    this.buffer.copy(wire, gapAt, headerAt, this.at);
    return wire;
  }
}

/** One writer for every call (`encodeDecideCall` runs to its end synchronously): its buffer is reused. */
const writer = new CommandWriter();

/** What `encodeDecideCall` encodes. */
export interface EncodeDecideInput {
  requests: readonly BatchMember[];
  /** A request's record lifetime unless it has its own, ms. */
  defaultRecordTtlMs: number;
  /** Each request's attempt token (`-` for each when undefined). */
  attempts?: readonly string[] | undefined;
  /** @default DECIDE_SCRIPT */
  script?: ScriptSource | undefined;
}

/**
 * Encodes one decide.lua call of `requests` (see `compileBatch` for the batch; `attempts[i]` is request i's
 * attempt token) as `EVALSHA <sha> <numkeys> ...each request's keys <packed batch>`.
 * @throws ValidationError `INVALID_INPUT` for an empty batch
 */
export function encodeDecideCall({ requests, defaultRecordTtlMs, attempts, script = DECIDE_SCRIPT }: EncodeDecideInput): DecideCall {
  const first = requests[0];
  if (first === undefined) throw new ValidationError('INVALID_INPUT', 'a batch needs at least one request');
  let keyCount = 0;
  for (const request of requests) keyCount += request.keyHeads.length;
  writer.reset();
  writer.text('*');
  writer.decimalLine(keyCount + 4);
  const arrayHeaderLength = writer.length;
  writer.text('$7\r\nevalsha\r\n$40\r\n');
  writer.text(script.sha);
  writer.text('\r\n');
  const argumentsAt = writer.length;
  writer.text('$');
  writer.decimalLine(String(keyCount).length);
  writer.decimalLine(keyCount);
  for (const request of requests) {
    const { keyHeads, keyTails } = request;
    for (let index = 0; index < keyHeads.length; index += 1) writer.key(keyHeads[index] as string, keyTails[index] as string);
  }
  const gapAt = writer.length;
  writer.skip(PACKED_HEADER_ROOM);
  const packedAt = writer.length;
  packBatch(writer, requests, defaultRecordTtlMs, attempts);
  return { wire: writer.finish(gapAt, packedAt), arrayHeaderLength, argumentsAt, slotKey: `${first.keyHeads[0]}${first.keyTails[0]}` };
}

/** The same call as `EVAL <lua> ...` (after NOSCRIPT): it runs the script and loads it for the next EVALSHA. */
export function evalWire(call: DecideCall, script: ScriptSource = DECIDE_SCRIPT): Buffer {
  return Buffer.concat([
    call.wire.subarray(0, call.arrayHeaderLength),
    Buffer.from(`$4\r\neval\r\n$${script.lua.length}\r\n`, 'latin1'),
    script.lua,
    Buffer.from('\r\n', 'latin1'),
    call.wire.subarray(call.argumentsAt),
  ]);
}

/** An ioredis command whose bytes are written already; it names its slot by one key (Redis Cluster routing). */
class EncodedCommand extends Command {
  readonly #wire: Buffer;
  readonly #slotKey: string;

  constructor(name: 'evalsha' | 'eval', wire: Buffer, slotKey: string) {
    // no reply encoding: decide.lua answers packed (binary) decisions, read as buffers
    super(name, [], { replyEncoding: null });
    this.#wire = wire;
    this.#slotKey = slotKey;
  }

  override toWritable(): Buffer {
    return this.#wire;
  }

  override getKeys(): string[] {
    return [this.#slotKey];
  }
}

/** Where a command can be sent: a client (single node or cluster) or a pipeline. */
interface CommandSink {
  sendCommand(command: Command): unknown;
}

/** What `sendDecideCall` sends, and where. */
export interface SendDecideInput {
  /** The client, or a pipeline of it. */
  via: CommandSink;
  /** The client: the EVAL after NOSCRIPT goes to it. */
  client: Redis | Cluster;
  call: DecideCall;
  /** The script `call` was encoded for. @default DECIDE_SCRIPT */
  script?: ScriptSource | undefined;
}

/**
 * Sends one decide call and answers its reply (buffers). A NOSCRIPT reply (the script did not run) sends it once
 * more, through the client, as EVAL.
 */
export function sendDecideCall({ via, client, call, script = DECIDE_SCRIPT }: SendDecideInput): Promise<unknown> {
  const command = new EncodedCommand('evalsha', call.wire, call.slotKey);
  // replaced before it is sent: a pipeline reads the command's promise as it queues it
  command.promise = command.promise.catch((error: unknown) => {
    if (redisErrorPrefix(error) !== 'NOSCRIPT') throw error;
    const again = new EncodedCommand('eval', evalWire(call, script), call.slotKey);
    void client.sendCommand(again);
    return again.promise;
  });
  void via.sendCommand(command);
  return command.promise as Promise<unknown>;
}
