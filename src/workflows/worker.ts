/**
 * The Temporal worker process, an entry point that exports nothing:
 * `node --import tsx src/workflows/worker.ts` (or `node dist/src/workflows/worker.js`).
 * Reads config once, polls the configured task queue, ensures the fleet's
 * long-running workflows, and stops cleanly on SIGINT/SIGTERM (the SDK's
 * runtime installs those handlers and drains in-flight tasks).
 *
 * A failed start exits non-zero: a failed Worker.create would otherwise keep
 * the process alive without polling.
 */
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { DependencyError, createLogger, loadConfig } from '../shared/index.js';
import { ensureAuditWorkflow, ensureJobSweepWorkflow } from './client.js';
import { WorkerMetrics, serveWorkerMetrics, type Readiness } from './metrics.js';
import { auditSettings, jobSweepSettings } from './settings.js';
import { createTollgateWorker, startAccountWorkflows, startMeterPumps } from './workers.js';
import { routeTemporalLogs } from './temporal-logging.js';

/** The fleet's ensure, as the worker's log tells it. */
function logMeterPumps(
  logger: ReturnType<typeof createLogger>,
  config: ReturnType<typeof loadConfig>,
  ensured: Awaited<ReturnType<typeof startMeterPumps>>,
): void {
  const pumps = Math.ceil(config.redis.shardCount / config.meter.shardsPerPump);
  logger.info({ shards: config.redis.shardCount, pumps, signalled: ensured.signalled, retired: ensured.retired }, 'meter pumps running');
  if (ensured.retireError !== undefined) {
    logger.warn(
      { err: ensured.retireError },
      'could not list or retire older pumps of these shards: they keep pumping beside the new ones',
    );
  }
}

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger({ level: config.log.level, name: 'tollgate-worker' });
  routeTemporalLogs(logger);
  let connection: NativeConnection;
  try {
    connection = await NativeConnection.connect({ address: config.temporal.address });
  } catch (error) {
    throw new DependencyError('TEMPORAL_UNAVAILABLE', `Temporal at ${config.temporal.address} is unreachable; check TEMPORAL_ADDRESS`, {
      cause: error,
    });
  }
  const metrics = new WorkerMetrics();
  const { worker, close } = await createTollgateWorker({ config, connection, logger, metrics });
  logger.info({ taskQueue: config.temporal.taskQueue, namespace: config.temporal.namespace }, 'worker polling');
  const running = worker.run();
  // ready: polling, and the long-running workflows this worker ensures are ensured
  let isFleetEnsured = false;
  let metricsServer: Awaited<ReturnType<typeof serveWorkerMetrics>> | undefined;
  try {
    if (config.worker.metricsPort !== 0) {
      metricsServer = await serveWorkerMetrics({
        registry: metrics.registry,
        host: config.api.host,
        port: config.worker.metricsPort,
        readiness: async (): Promise<Readiness> => {
          if (!isFleetEnsured) return { isReady: false, reason: 'STARTING' };
          const state = worker.getState();
          if (state !== 'RUNNING') return { isReady: false, reason: `WORKER_${state}` };
          const { isStalled, ...details } = await metrics.fleetHealth();
          return isStalled ? { isReady: false, reason: 'METER_FLEET_STALLED', details } : { isReady: true };
        },
      });
      logger.info({ url: `http://${config.api.host}:${config.worker.metricsPort}/metrics` }, 'worker metrics listening');
    }
    if (config.meter.isEnabled || config.audit.isEnabled || config.account.isEnabled || config.jobSweep.isEnabled) {
      const clientConnection = await Connection.connect({ address: config.temporal.address });
      try {
        const client = new Client({ connection: clientConnection, namespace: config.temporal.namespace });
        if (config.meter.isEnabled) {
          logMeterPumps(logger, config, await startMeterPumps({ config, client }));
        }
        if (config.audit.isEnabled) {
          await ensureAuditWorkflow(client, { taskQueue: config.temporal.taskQueue, settings: auditSettings(config) });
          logger.info({ intervalMs: config.audit.intervalMs }, 'metering audit running');
        }
        if (config.jobSweep.isEnabled) {
          await ensureJobSweepWorkflow(client, { taskQueue: config.temporal.taskQueue, settings: jobSweepSettings(config) });
          logger.info({ intervalMs: config.jobSweep.intervalMs }, 'jobs sweep running');
        }
        if (config.account.isEnabled) {
          const accounts = await startAccountWorkflows({ config, client });
          logger.info({ accounts }, 'account workflows running');
        }
      } finally {
        await clientConnection.close();
      }
    }
    isFleetEnsured = true;
  } catch (error) {
    worker.shutdown();
    await running.catch(() => undefined);
    metricsServer?.close();
    close();
    await connection.close();
    throw error;
  }
  try {
    await running;
  } finally {
    metricsServer?.close();
    close();
    await connection.close();
  }
  logger.info({}, 'worker stopped');
}

const isEntryPoint = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isEntryPoint) {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(`tollgate-worker: failed to start or run: ${error instanceof Error ? error.message : String(error)}`);
      process.exit(1);
    },
  );
}
