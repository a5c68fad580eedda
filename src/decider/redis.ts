/**
 * Redis connections for the decider. A decision must be fast or degraded,
 * never queued: commands time out after `commandTimeoutMs`, nothing waits in
 * an offline queue, and ioredis does not resend in-flight commands after a
 * reconnect (a resent script could be executed twice; scripts also dedupe by
 * request id, so this is defence in depth).
 */
import { Cluster, Redis } from 'ioredis';
import { DependencyError } from '../shared/index.js';
import { registerScripts } from './scripts.js';

export interface RedisConnectionOptions {
  /** Single-node URL, used when `clusterNodes` is undefined. */
  url: string;
  /** Cluster seed nodes; when set, a Cluster client is made. */
  clusterNodes?: { host: string; port: number }[] | undefined;
  /** Per-command timeout in ms. */
  commandTimeoutMs: number;
  /** Connect timeout in ms. @default 2000 */
  connectTimeoutMs?: number;
}

/** A decider client: single node or cluster, scripts registered. */
export type DeciderRedis = Redis | Cluster;

/** Opens a connection (lazily: the first command or `connect()` dials). */
export function createDeciderRedis(options: RedisConnectionOptions): DeciderRedis {
  const common = {
    commandTimeout: options.commandTimeoutMs,
    connectTimeout: options.connectTimeoutMs ?? 2_000,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    lazyConnect: true,
  };
  const client: DeciderRedis =
    options.clusterNodes === undefined
      ? new Redis(options.url, {
          ...common,
          // the first reconnection at once: a lost reply's batch is retried on it (RedisDecider)
          retryStrategy: (attempt: number) => (attempt === 1 ? 0 : Math.min(50 * 2 ** Math.min(attempt, 6), 2_000)),
        })
      : new Cluster(options.clusterNodes, {
          enableOfflineQueue: false,
          lazyConnect: true,
          clusterRetryStrategy: (attempt: number) => Math.min(50 * 2 ** Math.min(attempt, 6), 2_000),
          redisOptions: common,
        });
  registerScripts(client);
  return client;
}

/**
 * Opens a connection and waits until it is ready (commands fail fast while it
 * is not, since there is no offline queue).
 * @throws DependencyError `REDIS_UNAVAILABLE` when the first connection fails
 */
export async function connectDeciderRedis(options: RedisConnectionOptions): Promise<DeciderRedis> {
  const client = createDeciderRedis(options);
  try {
    await client.connect();
  } catch (error) {
    client.disconnect();
    throw new DependencyError('REDIS_UNAVAILABLE', 'could not connect to Redis', { cause: error });
  }
  return client;
}

const EVICTING = /^(allkeys-|volatile-)/;

/**
 * Refuses a Redis that may evict keys: an evicted bucket is free quota and an
 * evicted stream is lost billing. Reads `INFO memory` (allowed on managed
 * services where `CONFIG GET` is not) on every master.
 * @throws DependencyError `DEPENDENCY_FAILED` naming the node and its policy
 */
export async function assertNoEviction(client: DeciderRedis): Promise<void> {
  const nodes = client instanceof Cluster ? client.nodes('master') : [client];
  for (const node of nodes) {
    const info = await node.info('memory');
    const policy = /^maxmemory_policy:(\S+)/m.exec(info)?.[1];
    if (policy === undefined || EVICTING.test(policy)) {
      throw new DependencyError(
        'DEPENDENCY_FAILED',
        `Redis ${node.options.host ?? '?'}:${node.options.port ?? '?'} has maxmemory-policy ${policy ?? 'unknown'}; ` +
          'tollgate needs noeviction (an evicted key would be free quota or lost usage)',
      );
    }
  }
}
