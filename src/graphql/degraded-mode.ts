/**
 * The API process's decider and what keeps its degraded mode billed and
 * bounded (issue 15): the resilient decider over its spool, the live instance
 * count its local backstop divides limits by, the spool replayed at start and
 * every `DECIDER_SPOOL_REPLAY_MS` while it holds entries, and what `/metrics`
 * and `/ready` show of it.
 */
import { dirname, resolve } from 'node:path';
import { FileSpool, InstanceRegistry, ResilientDecider, type DeciderRedis } from '../decider/index.js';
import { systemClock, type AppConfig, type Logger } from '../shared/index.js';
import type { DegradedModeGauges } from './metrics.js';
import type { ReadinessCheck } from './readiness.js';

export interface DegradedMode {
  decider: ResilientDecider;
  instances: InstanceRegistry;
  gauges: DegradedModeGauges;
  /** The `spool` check (its folder writable) and the spool's detail, for `/ready`. */
  readiness: { checks: ReadinessCheck[]; detail: () => Record<string, unknown> };
  /** Stops the replay timer and the heartbeats, and leaves the instance set. */
  stop: () => Promise<void>;
}

/**
 * Builds the decider over the spool at `DECIDER_SPOOL_PATH`, replays what it holds (a previous life's degraded
 * usage) and starts the heartbeats; neither waits for Redis.
 * @throws Error when another live process holds the spool
 */
export async function startDegradedMode(input: { config: AppConfig; logger: Logger; redis: DeciderRedis }): Promise<DegradedMode> {
  const { config, logger, redis } = input;
  const spoolPath = resolve(config.redis.spoolPath);
  const spool = new FileSpool(spoolPath);
  const instances = new InstanceRegistry(redis, {
    deployment: config.redis.instances.deployment,
    heartbeatMs: config.redis.instances.heartbeatMs,
    floor: config.redis.instances.floor,
    statePath: `${spoolPath}.instances`,
    logger,
  });
  const decider = new ResilientDecider(redis, {
    shardCount: config.redis.shardCount,
    clock: systemClock,
    logger,
    spool,
    backstop: { instances: () => instances.count() },
    waitForReplicas: config.redis.waitForReplicas,
    timeouts: { redisShareMs: config.redis.deciderTimeoutMs, maxWaitMs: config.redis.commandTimeoutMs },
  });
  const waiting = decider.spoolStats();
  if (waiting.entries > 0)
    logger.warn({ entries: waiting.entries, oldestAgeSeconds: waiting.oldestAgeSeconds }, 'spool holds degraded usage; replaying');
  if (!waiting.isWritable)
    logger.error({ code: 'SPOOL_UNAVAILABLE', folder: dirname(spoolPath) }, 'spool folder not writable: degraded usage would be lost');
  decider.startReplays({ everyMs: config.redis.spoolReplayMs });
  await instances.start();
  logger.info(
    { instances: instances.count(), deployment: config.redis.instances.deployment },
    'backstop divides limits by the live instances',
  );
  return {
    decider,
    instances,
    gauges: { spool: () => decider.spoolStats(), instances: () => instances.count(), callFailures: () => decider.callFailures() },
    readiness: {
      checks: [
        {
          name: 'spool',
          run: () =>
            decider.spoolStats().isWritable
              ? Promise.resolve()
              : Promise.reject(Object.assign(new Error('the spool folder cannot be written'), { code: 'SPOOL_UNAVAILABLE' })),
        },
      ],
      detail: () => ({ spool: decider.spoolStats(), instances: { count: instances.count(), lastKnown: instances.lastKnown ?? null } }),
    },
    stop: async () => {
      decider.stopReplays();
      await instances.stop();
    },
  };
}
