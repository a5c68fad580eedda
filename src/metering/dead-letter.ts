/**
 * The pump's dead-letter step (`pump.ts`, step 4): acknowledges the entries holding poison and appends each poison
 * event of every entry this call acknowledged to the shard's dead-letter stream, in one script (one slot, atomic).
 */
import { DependencyError, InvariantError } from '../shared/index.js';
import type { DeciderRedis } from '../decider/index.js';

/** An event the pump cannot ledger, of stream entry `id`, with its fields and why. */
export interface PoisonEntry {
  id: string;
  fields: string[];
  reason: string;
}

/**
 * KEYS: the usage stream, its dead-letter stream; ARGV: the group, then per
 * entry its id, its number k of poison events, and k (reason, fields as JSON).
 * Appends an entry's poison events to the dead letters only when this XACK
 * acknowledged the entry (it was still pending). Returns {events appended, entries acknowledged}.
 */
const DEAD_LETTER_LUA = `
local count, acked, i = 0, 0, 2
while i <= #ARGV do
  local id, k = ARGV[i], tonumber(ARGV[i + 1])
  if redis.call('XACK', KEYS[1], ARGV[1], id) == 1 then
    acked = acked + 1
    for j = 0, k - 1 do
      redis.call('XADD', KEYS[2], '*', 'reason', ARGV[i + 2 + 2 * j], 'source', KEYS[1], 'source_id', id, 'fields', ARGV[i + 3 + 2 * j])
      count = count + 1
    end
  end
  i = i + 2 + 2 * k
end
return { count, acked }
`;

/**
 * An entry another batch already dead-lettered and acknowledged (a stalled batch and the retry that reclaimed its
 * entries) is skipped, so it is never lost and never dead-lettered twice. An entry may hold several events (a
 * decide.lua call's), poison or not: it is acknowledged once.
 * @returns the events dead-lettered and the entries acknowledged by this call
 * @throws DependencyError `REDIS_UNAVAILABLE` when Redis fails
 */
export async function deadLetter(input: {
  redis: DeciderRedis;
  stream: string;
  deadLetters: string;
  group: string;
  poison: readonly PoisonEntry[];
}): Promise<{ deadLettered: number; acked: number }> {
  const { redis, stream, poison } = input;
  const byEntry = new Map<string, PoisonEntry[]>();
  for (const item of poison) byEntry.set(item.id, [...(byEntry.get(item.id) ?? []), item]);
  const args = [...byEntry].flatMap(([id, items]) => [
    id,
    String(items.length),
    ...items.flatMap((item) => [item.reason, JSON.stringify(item.fields)]),
  ]);
  let reply: unknown;
  try {
    reply = await redis.eval(DEAD_LETTER_LUA, 2, stream, input.deadLetters, input.group, ...args);
  } catch (error) {
    throw new DependencyError('REDIS_UNAVAILABLE', `dead-lettering ${poison.length} entries of ${stream} failed`, { cause: error });
  }
  if (!Array.isArray(reply) || typeof reply[0] !== 'number' || typeof reply[1] !== 'number') {
    throw new InvariantError('dead-letter script: malformed reply');
  }
  return { deadLettered: reply[0], acked: reply[1] };
}
