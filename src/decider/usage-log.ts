/**
 * Appends usage events to their shard's stream exactly once (by event id) and
 * counts them into the tenant's admitted counter. This is the write the
 * degraded-mode spool replays; the hot path's own events are appended inside
 * the decision script itself.
 */
import { isScriptArgumentError } from './redis-errors.js';
import { decodeAppendUsage, type AppendUsageResult } from './replies.js';
import { admittedKey, eventMarkerKey, partOf, requestRecordKey, shardOfPart, usageStreamKey } from './keys.js';
import type { DeciderRedis } from './redis.js';
import { DependencyError, InvariantError, type EventId, type TenantId } from '../shared/index.js';

/** How long a retried append of the same event id is recognised. @default 7 days */
export const EVENT_DEDUPE_TTL_MS = 7 * 24 * 3600 * 1000;
/** How long an admitted counter is kept past its write (the audit reads it after the close). */
export const ADMITTED_TTL_MS = 400 * 86_400_000;

export interface AppendUsageInput {
  tenant: TenantId;
  eventId: EventId;
  /** Flat string fields of the event; `time_ms` is added by Redis. */
  fields: Record<string, string>;
  shardCount: number;
  /**
   * When set, the event is skipped if the decider already recorded this request
   * (its reply was lost): `decision` for admissions, `settlement` for settles.
   */
  recorded?: { requestId: EventId; as: 'decision' | 'settlement' };
  /** When set, `delta` units are added to the admitted counter of the billing period starting at `periodStartMs`. */
  admitted?: { periodStartMs: number; delta: number };
  /** A whale tenant's sub-shard count when the request was decided: its part follows from the request id. @default 1 */
  subShards?: number;
  /** How long a retried append of this event id is recognised, ms (at least 1000). @default EVENT_DEDUPE_TTL_MS */
  dedupeTtlMs?: number;
}

/**
 * Appends one event unless an earlier call (or the decider itself) already recorded it.
 * @throws DependencyError `REDIS_UNAVAILABLE` when Redis fails or times out
 */
export async function appendUsage(client: DeciderRedis, input: AppendUsageInput): Promise<AppendUsageResult> {
  const requestId = input.recorded?.requestId ?? input.eventId;
  const part = partOf(requestId, input.subShards ?? 1);
  const shard = shardOfPart(input.tenant, input.shardCount, part);
  const args: string[] = [
    String(input.dedupeTtlMs ?? EVENT_DEDUPE_TTL_MS),
    String(input.admitted?.delta ?? 0),
    String(ADMITTED_TTL_MS),
    input.recorded === undefined ? '0' : input.recorded.as === 'decision' ? 'd' : 's',
  ];
  for (const [field, value] of Object.entries(input.fields)) args.push(field, value);
  let reply: unknown;
  try {
    reply = await client.tgAppendUsage(
      usageStreamKey(shard),
      eventMarkerKey(shard, input.eventId),
      requestRecordKey(shard, input.tenant, requestId, part),
      admittedKey(shard, input.tenant, input.admitted?.periodStartMs ?? 0, part),
      ...args,
    );
  } catch (error) {
    if (isScriptArgumentError(error)) throw new InvariantError('append-usage rejected its arguments', { cause: error });
    throw new DependencyError('REDIS_UNAVAILABLE', 'Redis did not append the usage event', { cause: error });
  }
  return decodeAppendUsage(reply);
}
