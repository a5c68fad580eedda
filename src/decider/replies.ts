/**
 * Decoders for script replies. A reply of the wrong shape is an
 * InvariantError: the script and this code disagree, which must never pass
 * silently into a billing decision.
 */
import { InvariantError } from '../shared/index.js';
import type { RawDecision } from './model/limits.js';

function fail(script: string, reply: unknown, why: string): never {
  throw new InvariantError(`${script} reply ${why}: ${JSON.stringify(reply)?.slice(0, 200)}`);
}

function integerAt(script: string, reply: unknown[], index: number): number {
  const value = reply[index];
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) fail(script, reply, `[${index}] is not an integer`);
  return value;
}

function stringAt(script: string, reply: unknown[], index: number): string {
  const value = reply[index];
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return fail(script, reply, `[${index}] is not a string`);
}

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
  const script = 'append-usage';
  if (!Array.isArray(reply) || reply.length !== 3) fail(script, reply, 'is not a 3-element array');
  const isNew = integerAt(script, reply, 0);
  if (isNew !== 0 && isNew !== 1) fail(script, reply, '[0] is not 0|1');
  const streamId = stringAt(script, reply, 2);
  if (!/^\d+-\d+$/.test(streamId)) fail(script, reply, '[2] is not a stream id');
  return { isNew: isNew === 1, nowMs: integerAt(script, reply, 1), streamId };
}

/** @throws InvariantError when the reply is not `{nowMs}` */
export function decodeClock(reply: unknown): { nowMs: number } {
  if (!Array.isArray(reply) || reply.length !== 1) fail('clock', reply, 'is not a 1-element array');
  return { nowMs: integerAt('clock', reply, 0) };
}

/**
 * Decodes the reply of `decide.lua` (one array per request) for a batch whose
 * requests carry `limitCounts[i]` limits each.
 * @throws InvariantError when the reply does not have exactly that shape
 */
export function decodeDecideBatch(reply: unknown, limitCounts: number[]): RawDecision[] {
  const script = 'decide';
  if (!Array.isArray(reply)) fail(script, reply, 'is not an array');
  if (reply.length !== limitCounts.length) fail(script, reply, `has ${reply.length} decisions for ${limitCounts.length} requests`);
  return limitCounts.map((expectedCount, position) => {
    const one: unknown = reply[position];
    if (!Array.isArray(one)) fail(script, reply, `[${position}] is not an array`);
    const kind = integerAt(script, one, 0);
    if (kind !== 0 && kind !== 1 && kind !== 2 && kind !== 3) fail(script, one, '[0] is not a decision kind');
    const isReplay = integerAt(script, one, 5);
    if (isReplay !== 0 && isReplay !== 1) fail(script, one, '[5] is not 0|1');
    // A replay carries the limits of the first decision, which a plan change may have altered.
    const count = integerAt(script, one, 6);
    if (count < 0 || count > 64 || (isReplay === 0 && count !== expectedCount)) {
      fail(script, one, `[6] is not the limit count ${expectedCount}`);
    }
    if (one.length !== 7 + 5 * count) fail(script, one, `has ${one.length} elements, not ${7 + 5 * count}`);
    const decision: RawDecision = {
      kind,
      nowMs: integerAt(script, one, 1),
      limitIndex: integerAt(script, one, 2),
      retryAfterMs: integerAt(script, one, 3),
      streamId: stringAt(script, one, 4),
      isReplay: isReplay === 1,
      limits: [],
    };
    if (decision.limitIndex < 0 || decision.limitIndex > count) fail(script, one, '[2] is not a limit index');
    for (let at = 7; at < one.length; at += 5) {
      decision.limits.push({
        remaining: integerAt(script, one, at),
        resetMs: integerAt(script, one, at + 1),
        flags: integerAt(script, one, at + 2),
        overage: integerAt(script, one, at + 3),
        crossed: integerAt(script, one, at + 4),
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
  const script = 'settle';
  if (!Array.isArray(reply) || reply.length !== 4) fail(script, reply, 'is not a 4-element array');
  const status = integerAt(script, reply, 0);
  if (status !== 0 && status !== 1 && status !== 2) fail(script, reply, '[0] is not a settle status');
  return {
    status: status === 1 ? 'settled' : status === 2 ? 'replay' : 'unknown',
    nowMs: integerAt(script, reply, 1),
    streamId: stringAt(script, reply, 2),
    refund: integerAt(script, reply, 3),
  };
}
