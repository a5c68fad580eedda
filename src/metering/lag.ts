/**
 * How far the ledger is behind the usage streams (DESIGN §8 `/metrics`), read
 * from Redis: per shard, one pipeline on the shard's slot (XINFO GROUPS,
 * XPENDING summary, XLEN of the stream and of its dead letters), and one more
 * XRANGE COUNT 1 only when the group has no pending entry but undelivered
 * ones. Bounded: 2 round trips per shard at most, `concurrency` shards at once.
 */
import { DependencyError } from '../shared/index.js';
import { redisErrorPrefix, usageStreamKey, type DeciderRedis, type ShardId } from '../decider/index.js';
import { deadLetterStreamKey } from './keys.js';

/** Totals over the shards read. JSON-safe. */
export interface StreamLag {
  /** Usage entries not acknowledged by the pump (pending + not yet delivered), summed over shards. */
  unacknowledged: number;
  /** Age of the oldest unacknowledged entry (by its stream id's ms), seconds; 0 when none: the ledger lag. */
  oldestUnacknowledgedAgeSeconds: number;
  /** Entries in the dead-letter streams, summed. */
  deadLetters: number;
  /** Shards whose stream exists. */
  streams: number;
}

export interface ReadStreamLagInput {
  shards: readonly number[];
  /** @default 'meter' */
  group?: string;
  /** Shards read at once. @default 16 */
  concurrency?: number;
}

const idMs = (id: string): number => Number(id.split('-')[0]);

function mapOf(raw: unknown): Map<string, unknown> {
  const map = new Map<string, unknown>();
  if (!Array.isArray(raw)) return map;
  for (let index = 0; index + 1 < raw.length; index += 2) map.set(String(raw[index]), raw[index + 1]);
  return map;
}

interface ShardLag {
  unacknowledged: number;
  /** ms of the oldest unacknowledged entry, or undefined. */
  oldestMs: number | undefined;
  deadLetters: number;
  exists: boolean;
}

async function shardLag(redis: DeciderRedis, shard: ShardId, group: string): Promise<ShardLag> {
  const stream = usageStreamKey(shard);
  const replies = await redis
    .pipeline()
    .xlen(stream)
    .xlen(deadLetterStreamKey(shard))
    .xinfo('GROUPS', stream)
    .xpending(stream, group)
    .exec();
  if (replies === null) throw new DependencyError('REDIS_UNAVAILABLE', `lag of ${stream}: pipeline aborted`);
  const [
    [lenError, lenRaw] = [null, 0],
    [deadError, deadRaw] = [null, 0],
    [groupsError, groupsRaw] = [null, null],
    [pendingError, pendingRaw] = [null, null],
  ] = replies;
  if (lenError !== null || deadError !== null)
    throw new DependencyError('REDIS_UNAVAILABLE', `lag of ${stream} failed`, { cause: lenError ?? deadError });
  const length = Number(lenRaw);
  const deadLetters = Number(deadRaw);
  if (length === 0) return { unacknowledged: 0, oldestMs: undefined, deadLetters, exists: groupsError === null };
  const info = Array.isArray(groupsRaw) ? groupsRaw.map(mapOf).find((candidate) => candidate.get('name') === group) : undefined;
  if (info === undefined || pendingError !== null) {
    // no consumer group yet (the pump never ran on this shard): every entry waits
    if (pendingError !== null && redisErrorPrefix(pendingError) !== 'NOGROUP')
      throw new DependencyError('REDIS_UNAVAILABLE', `XPENDING ${stream} failed`, { cause: pendingError });
    const first = await redis.xrange(stream, '-', '+', 'COUNT', 1);
    return { unacknowledged: length, oldestMs: first[0] === undefined ? undefined : idMs(first[0][0]), deadLetters, exists: true };
  }
  const lastDelivered = String(info.get('last-delivered-id'));
  const pending = Array.isArray(pendingRaw) ? Number(pendingRaw[0]) : 0;
  const oldestPending = Array.isArray(pendingRaw) && typeof pendingRaw[1] === 'string' ? pendingRaw[1] : undefined;
  const rawLag = info.get('lag');
  let undelivered: number;
  let firstUndelivered: string | undefined;
  if (typeof rawLag === 'number' && Number.isSafeInteger(rawLag) && rawLag >= 0) {
    undelivered = rawLag;
    if (undelivered > 0 && oldestPending === undefined)
      firstUndelivered = (await redis.xrange(stream, `(${lastDelivered}`, '+', 'COUNT', 1))[0]?.[0];
  } else {
    // Redis could not tell (entries deleted mid-stream): count what follows the last delivered id, at most the stream's length
    const after = await redis.xrange(stream, `(${lastDelivered}`, '+', 'COUNT', length);
    undelivered = after.length;
    firstUndelivered = after[0]?.[0];
  }
  const oldest = oldestPending ?? firstUndelivered;
  return { unacknowledged: pending + undelivered, oldestMs: oldest === undefined ? undefined : idMs(oldest), deadLetters, exists: true };
}

/**
 * Reads the lag of the given shards' usage streams.
 * @throws DependencyError `REDIS_UNAVAILABLE`
 */
export async function readStreamLag(redis: DeciderRedis, input: ReadStreamLagInput): Promise<StreamLag> {
  const group = input.group ?? 'meter';
  const queue = [...input.shards];
  const lags: ShardLag[] = [];
  try {
    const lanes = Array.from({ length: Math.min(input.concurrency ?? 16, queue.length) }, async () => {
      for (let shard = queue.shift(); shard !== undefined; shard = queue.shift()) lags.push(await shardLag(redis, shard as ShardId, group));
    });
    await Promise.all(lanes);
  } catch (error) {
    if (error instanceof DependencyError) throw error;
    throw new DependencyError('REDIS_UNAVAILABLE', 'reading the usage stream lag failed', { cause: error });
  }
  const time = await redis.time();
  const nowMs = Number(time[0]) * 1_000 + Math.floor(Number(time[1]) / 1_000);
  const oldest = lags.reduce<number | undefined>(
    (min, lag) => (lag.oldestMs === undefined ? min : min === undefined ? lag.oldestMs : Math.min(min, lag.oldestMs)),
    undefined,
  );
  return {
    unacknowledged: lags.reduce((sum, lag) => sum + lag.unacknowledged, 0),
    oldestUnacknowledgedAgeSeconds: oldest === undefined ? 0 : Math.max(0, Math.floor((nowMs - oldest) / 1_000)),
    deadLetters: lags.reduce((sum, lag) => sum + lag.deadLetters, 0),
    streams: lags.filter((lag) => lag.exists).length,
  };
}
