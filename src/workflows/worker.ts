/**
 * The Temporal worker process: `node --import tsx src/workflows/worker.ts`
 * (or `node dist/src/workflows/worker.js`). Reads config once, polls the
 * configured task queue, and stops cleanly on SIGINT/SIGTERM (the SDK's
 * runtime installs those handlers and drains in-flight tasks).
 *
 * A failed start exits non-zero: a failed Worker.create would otherwise keep
 * the process alive without polling.
 */
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { DependencyError, createLogger, loadConfig, type AppConfig, type Logger } from '../shared/index.js';
import { connectDeciderRedis } from '../decider/index.js';
import {
  DynamoAccountStore,
  DynamoAuditStore,
  DynamoLedgerStore,
  DynamoPeriodStore,
  MeteringAuditor,
  UsagePump,
  createDynamoClient,
  type PumpStage,
} from '../metering/index.js';
import {
  createAccountActivities,
  createAuditActivities,
  createJobSweepActivities,
  createLedgerActivities,
  createMeteringActivities,
} from './activities/index.js';
import { TemporalWarningSink, ensureAccountWorkflow, ensureAuditWorkflow, ensureJobSweepWorkflow, ensureMeterWorkflows } from './client.js';
import { DynamoJobStore } from './job-store.js';
import { restartDeferredJob, sweepOpenJobs } from './jobs.js';
import { workflowsPath } from './workflows-path.js';
import { WorkerMetrics, serveWorkerMetrics } from './metrics.js';
import type { AccountTimings, AuditSettings, JobSweepSettings, MeterSettings } from './workflows/index.js';

/** Per-command Redis timeout of the pump, ms: batches are not latency-critical, a stuck command is retried. */
const PUMP_REDIS_TIMEOUT_MS = 5_000;

/** The pump workflows' settings from configuration. */
export function meterSettings(config: Pick<AppConfig, 'meter'>): MeterSettings {
  return {
    idleDelayMs: config.meter.idleDelayMs,
    iterationsPerRun: config.meter.iterationsPerRun,
    activityTimeoutMs: config.meter.activityTimeoutMs,
    heartbeatTimeoutMs: config.meter.heartbeatTimeoutMs,
  };
}

/** The audit workflow's settings from configuration. */
export function auditSettings(config: Pick<AppConfig, 'audit'>): AuditSettings {
  return {
    intervalMs: config.audit.intervalMs,
    scanCount: config.audit.scanCount,
    pagesPerRun: config.audit.pagesPerRun,
    activityTimeoutMs: config.audit.activityTimeoutMs,
  };
}

/** The jobs sweep's settings from configuration. */
export function jobSweepSettings(config: Pick<AppConfig, 'jobSweep'>): JobSweepSettings {
  const { jobSweep } = config;
  return {
    intervalMs: jobSweep.intervalMs,
    graceMs: jobSweep.graceMs,
    pageSize: jobSweep.pageSize,
    pagesPerRun: jobSweep.pagesPerRun,
    activityTimeoutMs: jobSweep.activityTimeoutMs,
  };
}

/** The account workflows' timings from configuration. */
export function accountTimings(config: Pick<AppConfig, 'account'>): AccountTimings {
  const { account } = config;
  return {
    graceMs: account.lateGraceMs,
    activityTimeoutMs: account.activityTimeoutMs,
    // one attempt: the POST plus the two record writes around it
    deliveryTimeoutMs: account.webhookTimeoutMs + 5_000,
    webhookRetryInitialMs: account.webhookRetryInitialMs,
    webhookRetryMaxMs: account.webhookRetryMaxMs,
    webhookMaxAttempts: account.webhookMaxAttempts,
    noAccountRecheckMs: account.noAccountRecheckMs,
  };
}

export { workflowsPath };

export interface TollgateWorkerInput {
  config: Pick<AppConfig, 'temporal' | 'dynamodb' | 'redis' | 'meter' | 'account' | 'jobs'>;
  connection: NativeConnection;
  logger: Logger;
  /** Where pump and audit metrics go. @default a fresh registry (not served) */
  metrics?: WorkerMetrics;
  /** Overrides the task queue (tests use one per file). */
  taskQueue?: string;
  /** A prebuilt workflow bundle instead of bundling `workflowsPath()` (tests that restart workers often). */
  workflowBundle?: { codePath: string };
  /** Called at each stage of every pump batch (tests inject crashes here). */
  onPumpStage?: (stage: PumpStage, shard: number) => void;
  /** Called after a warning webhook accepted a POST, before its record says delivered (tests inject crashes here). */
  onWebhookAccepted?: (idempotencyKey: string) => void;
  /** Worker tuning that tests shorten (e.g. how soon a dead worker's sticky tasks move on), and the sinks of test interceptors. */
  workerOptions?: Pick<WorkerOptions, 'stickyQueueScheduleToStartTimeout' | 'maxCachedWorkflows' | 'sinks'>;
}

/**
 * Creates (but does not run) a worker with every tollgate workflow and activity.
 * @throws DependencyError `REDIS_UNAVAILABLE` when Redis (for the pump) cannot be reached
 */
export async function createTollgateWorker(input: TollgateWorkerInput): Promise<{ worker: Worker; close: () => void }> {
  const { config } = input;
  const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
  const ledger = new DynamoLedgerStore(dynamo, {
    tablePrefix: config.dynamodb.tablePrefix,
    maxTransactItems: config.meter.maxTransactItems,
    transactionsInFlight: config.meter.transactionsInFlight,
  });
  let redis: Awaited<ReturnType<typeof connectDeciderRedis>> | undefined;
  try {
    redis = await connectDeciderRedis({
      url: config.redis.url,
      clusterNodes: config.redis.clusterNodes,
      commandTimeoutMs: PUMP_REDIS_TIMEOUT_MS,
    });
    // Activities fail (and Temporal retries them) while Redis is away; log the lost connection once per outage.
    let isRedisErrorLogged = false;
    redis.on('error', (error: Error) => {
      if (isRedisErrorLogged) return;
      isRedisErrorLogged = true;
      input.logger.warn({ code: 'REDIS_UNAVAILABLE', err: error.message }, 'redis connection error; reconnecting');
    });
    redis.on('ready', () => {
      isRedisErrorLogged = false;
    });
    const taskQueue = input.taskQueue ?? config.temporal.taskQueue;
    const client = new Client({ connection: input.connection, namespace: config.temporal.namespace });
    const pump = new UsagePump(redis, ledger, {
      batchSize: config.meter.batchSize,
      claimMinIdleMs: config.meter.claimMinIdleMs,
      ...(config.account.isEnabled ? { warningSink: new TemporalWarningSink(client, { taskQueue, timings: accountTimings(config) }) } : {}),
    });
    const metrics = input.metrics ?? new WorkerMetrics();
    const jobStore = new DynamoJobStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
    const auditor = new MeteringAuditor(redis, dynamo, { shardCount: config.redis.shardCount, tablePrefix: config.dynamodb.tablePrefix });
    const worker = await Worker.create({
      connection: input.connection,
      namespace: config.temporal.namespace,
      taskQueue,
      ...(input.workflowBundle === undefined ? { workflowsPath: workflowsPath() } : { workflowBundle: input.workflowBundle }),
      ...input.workerOptions,
      activities: {
        ...createLedgerActivities({ ledger }),
        ...createMeteringActivities({
          pump,
          onBatch: (outcome) => {
            if ('result' in outcome) metrics.recordBatch(outcome.result);
            else metrics.meterBatchFailures.inc();
          },
          ...(input.onPumpStage === undefined ? {} : { onStage: input.onPumpStage }),
        }),
        ...createAuditActivities({
          auditor,
          store: new DynamoAuditStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix }),
          logger: input.logger.child({ component: 'audit' }),
          onCycle: (cycle) => metrics.recordAudit(cycle),
        }),
        ...createJobSweepActivities({
          sweepPage: async (page) =>
            sweepOpenJobs({ client, store: jobStore, settings: config.jobs, nowMs: Date.now(), ...page }),
          logger: input.logger.child({ component: 'jobs-sweep' }),
          onPage: (counts) => metrics.recordJobSweep(counts),
        }),
        ...createAccountActivities({
          accounts: new DynamoAccountStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix }),
          periods: new DynamoPeriodStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix }),
          jobs: jobStore,
          client,
          webhookTimeoutMs: config.account.webhookTimeoutMs,
          wakeMaxJobs: config.account.wakeMaxJobs,
          restartJob: async ({ tenant, jobId }) => restartDeferredJob({ client, store: jobStore, settings: config.jobs, tenant, jobId }),
          ...(input.onWebhookAccepted === undefined ? {} : { onWebhookAccepted: input.onWebhookAccepted }),
        }),
      },
    });
    const redisClient = redis;
    return {
      worker,
      close: () => {
        redisClient.disconnect();
        dynamo.destroy();
      },
    };
  } catch (error) {
    redis?.disconnect();
    dynamo.destroy();
    throw error;
  }
}

/** Ensures the pump workflow of every shard runs (see ensureMeterWorkflows). */
export async function startMeterPumps(input: { config: Pick<AppConfig, 'temporal' | 'redis' | 'meter'>; client: Client; taskQueue?: string }): Promise<void> {
  await ensureMeterWorkflows(input.client, {
    shards: Array.from({ length: input.config.redis.shardCount }, (_, shard) => shard),
    taskQueue: input.taskQueue ?? input.config.temporal.taskQueue,
    settings: meterSettings(input.config),
  });
}

/** Ensures an `account/<tenant>` workflow runs for every tenant with stored settings. @returns how many */
export async function startAccountWorkflows(input: { config: Pick<AppConfig, 'temporal' | 'dynamodb' | 'account'>; client: Client; taskQueue?: string }): Promise<number> {
  const { config } = input;
  const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
  try {
    const tenants = await new DynamoAccountStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix }).listTenants();
    for (const tenant of tenants) {
      await ensureAccountWorkflow(input.client, { tenant, taskQueue: input.taskQueue ?? config.temporal.taskQueue, timings: accountTimings(config) });
    }
    return tenants.length;
  } finally {
    dynamo.destroy();
  }
}

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger({ level: config.log.level, name: 'tollgate-worker' });
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
  let metricsServer: Awaited<ReturnType<typeof serveWorkerMetrics>> | undefined;
  try {
    if (config.worker.metricsPort !== 0) {
      metricsServer = await serveWorkerMetrics({ registry: metrics.registry, host: config.api.host, port: config.worker.metricsPort });
      logger.info({ url: `http://${config.api.host}:${config.worker.metricsPort}/metrics` }, 'worker metrics listening');
    }
    if (config.meter.isEnabled || config.audit.isEnabled || config.account.isEnabled || config.jobSweep.isEnabled) {
      const clientConnection = await Connection.connect({ address: config.temporal.address });
      try {
        const client = new Client({ connection: clientConnection, namespace: config.temporal.namespace });
        if (config.meter.isEnabled) {
          await startMeterPumps({ config, client });
          logger.info({ shards: config.redis.shardCount }, 'meter pumps running');
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
