/**
 * Redis keys of metering. Every key is built by the decider's key builder
 * (`usageStreamKey`, `deadLetterStreamKey`); they carry the same `{s:<shard>}` hash
 * tag, so the usage stream and its dead letters sit in one slot (a MULTI that
 * dead-letters and acknowledges is one atomic act, on a cluster too).
 */
import { ValidationError } from '../shared/index.js';
import type { ShardId } from '../decider/index.js';

/** `{s:<shard>}:dead:v1`, built with the decider's other keys (one key builder). */
export { deadLetterStreamKey } from '../decider/index.js';

/** Checks a logical shard number (an integer in [0, 16384)). @throws ValidationError `INVALID_INPUT` */
export function parseShard(raw: unknown): ShardId {
  if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < 0 || raw >= 16_384) {
    throw new ValidationError('INVALID_INPUT', `a shard is an integer in [0, 16384), got ${String(raw)}`);
  }
  return raw as ShardId;
}
