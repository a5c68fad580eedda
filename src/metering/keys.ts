/**
 * Redis keys of metering. The usage stream's key comes from the decider
 * (`usageStreamKey`); metering's own keys carry the same `{s:<shard>}` hash
 * tag, so the usage stream and its dead letters sit in one slot (a MULTI that
 * dead-letters and acknowledges is one atomic act, on a cluster too).
 */
import { ValidationError } from '../shared/index.js';
import type { ShardId } from '../decider/index.js';

/** `{s:<shard>}:dead:v1`: usage entries the pump could not ledger, with the reason. */
export function deadLetterStreamKey(shard: ShardId): string {
  return `{s:${shard}}:dead:v1`;
}

/** Checks a logical shard number (an integer in [0, 16384)). @throws ValidationError `INVALID_INPUT` */
export function parseShard(raw: unknown): ShardId {
  if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < 0 || raw >= 16_384) {
    throw new ValidationError('INVALID_INPUT', `a shard is an integer in [0, 16384), got ${String(raw)}`);
  }
  return raw as ShardId;
}
