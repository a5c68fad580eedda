/**
 * The only place Redis keys are built (STYLE §4, DESIGN §5). Every key of one
 * atomic decision carries its logical shard's hash tag `{s:<shard>}`, so one
 * script call touches one slot on a single Redis or on Redis Cluster. Key parts
 * are branded ids whose alphabet excludes every separator, so no two distinct
 * inputs build the same key. `v1` is the data-layout version.
 */
import { ValidationError, type EventId, type LimitId, type TenantId } from '../shared/index.js';

/** A logical shard number in [0, shardCount). */
export type ShardId = number & { readonly __brand: 'ShardId' };

/** 32-bit FNV-1a over the UTF-8 bytes: stable across processes, versions and languages. */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

/** The logical shard of a tenant. Changing `shardCount` re-homes tenants: it is fixed for the life of the data. */
export function shardOf(tenant: TenantId, shardCount: number): ShardId {
  if (!Number.isInteger(shardCount) || shardCount < 1 || shardCount > 16_384) {
    throw new ValidationError('INVALID_INPUT', `shardCount must be an integer in 1..16384, got ${shardCount}`);
  }
  return (fnv1a32(tenant) % shardCount) as ShardId;
}

const tag = (shard: ShardId): string => `{s:${shard}}`;

/** `{s:<shard>}:usage:v1`: the shard's usage stream (the billing record). */
export function usageStreamKey(shard: ShardId): string {
  return `${tag(shard)}:usage:v1`;
}

/** `{s:<shard>}:e:v1:<eventId>`: marks an event id as appended (dedupe on retry and spool replay). */
export function eventMarkerKey(shard: ShardId, eventId: EventId): string {
  return `${tag(shard)}:e:v1:${eventId}`;
}

/** `{s:<shard>}:t:<tenant>:b:v1:<limitId>`: one limit's bucket state for a tenant. */
export function bucketKey(input: { shard: ShardId; tenant: TenantId; limitId: LimitId }): string {
  return `${tag(input.shard)}:t:${input.tenant}:b:v1:${input.limitId}`;
}

/** Matches every key this module can build; tests check Redis holds nothing else. */
export const KEY_PATTERN =
  /^\{s:\d{1,5}\}:(usage:v1|e:v1:[a-z0-9][a-z0-9._-]{0,127}|t:[a-z0-9][a-z0-9_-]{0,63}:b:v1:[a-z0-9][a-z0-9_-]{0,63})$/;
