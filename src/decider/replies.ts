/**
 * Decoders for script replies. A reply of the wrong shape is an
 * InvariantError: the script and this code disagree, which must never pass
 * silently into a billing decision.
 */
import { InvariantError } from '../shared/index.js';

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
