/**
 * Readiness of the decider: runs a script (not PING), because a Redis that
 * answers PING can still have scripting broken or be loading its AOF.
 */
import { DependencyError } from '../shared/index.js';
import { decodeClock } from './replies.js';
import type { DeciderRedis } from './redis.js';

/**
 * Returns Redis' clock in ms.
 * @throws DependencyError `REDIS_UNAVAILABLE` when the script does not run in time
 */
export async function probeDecider(client: DeciderRedis): Promise<{ nowMs: number }> {
  let reply: unknown;
  try {
    reply = await client.tgClock();
  } catch (error) {
    throw new DependencyError('REDIS_UNAVAILABLE', 'Redis did not run the clock script', { cause: error });
  }
  return decodeClock(reply);
}
