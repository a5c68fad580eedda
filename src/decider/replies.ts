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
 * Decodes the reply of `decide.lua` (one array per request) for a batch whose
 * requests carry `limitCounts[i]` limits each.
 * @throws InvariantError when the reply does not have exactly that shape
 */
export function decodeDecideBatch(reply: unknown, limitCounts: number[]): RawDecision[] {
  if (!Array.isArray(reply)) DECIDE.fail(reply, 'is not an array');
  if (reply.length !== limitCounts.length) DECIDE.fail(reply, `has ${reply.length} decisions for ${limitCounts.length} requests`);
  return limitCounts.map((expectedCount, position) => {
    const one: unknown = reply[position];
    if (!Array.isArray(one)) DECIDE.fail(reply, `[${position}] is not an array`);
    const kind = DECIDE.integerAt(one, 0);
    if (kind !== 0 && kind !== 1 && kind !== 2 && kind !== 3) DECIDE.fail(one, '[0] is not a decision kind');
    const isReplay = DECIDE.integerAt(one, 5);
    if (isReplay !== 0 && isReplay !== 1) DECIDE.fail(one, '[5] is not 0|1');
    // A replay carries the limits of the first decision, which a plan change may have altered.
    const count = DECIDE.integerAt(one, 6);
    if (count < 0 || count > 64 || (isReplay === 0 && count !== expectedCount)) {
      DECIDE.fail(one, `[6] is not the limit count ${expectedCount}`);
    }
    if (one.length !== 7 + 5 * count) DECIDE.fail(one, `has ${one.length} elements, not ${7 + 5 * count}`);
    const decision: RawDecision = {
      kind,
      nowMs: DECIDE.integerAt(one, 1),
      limitIndex: DECIDE.integerAt(one, 2),
      retryAfterMs: DECIDE.integerAt(one, 3),
      streamId: DECIDE.stringAt(one, 4),
      isReplay: isReplay === 1,
      limits: [],
    };
    if (decision.limitIndex < 0 || decision.limitIndex > count) DECIDE.fail(one, '[2] is not a limit index');
    for (let at = 7; at < one.length; at += 5) {
      decision.limits.push({
        remaining: DECIDE.integerAt(one, at),
        resetMs: DECIDE.integerAt(one, at + 1),
        flags: DECIDE.integerAt(one, at + 2),
        overage: DECIDE.integerAt(one, at + 3),
        crossed: DECIDE.integerAt(one, at + 4),
      });
    }
    return decision;
  });
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
