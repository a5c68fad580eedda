/**
 * Assembles Temporal workers: `createTollgateWorker` (every tollgate workflow
 * and the metering, audit, sweep and account activities; the worker process),
 * `createJobsWorker` (the job activities; hosted by the API process, which owns
 * the schema jobs run against), and the fleet's starts at worker start.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { Client } from '@temporalio/client';
import { Worker, type NativeConnection, type WorkerOptions } from '@temporalio/worker';
import type { AppConfig, Logger } from '../shared/index.js';
import { connectDeciderRedis, type DeciderRedis } from '../decider/index.js';
import {
  DynamoAuditStore,
  DynamoLedgerStore,
  MeteringAuditor,
  UsagePump,
  createDynamoClient,
  readStreamLag,
  type PumpStage,
} from '../metering/index.js';
import { DynamoAccountStore, DynamoPeriodStore } from '../billing/index.js';
import { DynamoJobStore } from '../jobs/index.js';
import {
  createAccountActivities,
  createAuditActivities,
  createJobActivities,
  createJobSweepActivities,
  createMeteringActivities,
  type JobActivityDeps,
} from './activities/index.js';
import { TemporalWarningSink, ensureAccountWorkflow, ensureMeterWorkflows } from './client.js';
import { restartDeferredJob, sweepOpenJobs } from './jobs.js';
import { WorkerMetrics } from './metrics.js';
import { accountTimings, meterSettings } from './settings.js';

/** Per-command Redis timeout of the pump, ms: batches are not latency-critical, a stuck command is retried. */
const PUMP_REDIS_TIMEOUT_MS = 5_000;

/** Path of the workflow bundle's entry (.ts in dev, .js when built). */
export function workflowsPath(): string {
  const ts = fileURLToPath(new URL('./workflows/index.ts', import.meta.url));
  return existsSync(ts) ? ts : fileURLToPath(new URL('./workflows/index.js', import.meta.url));
}

export interface TollgateWorkerInput {
  config: Pick<AppConfig, 'temporal' | 'dynamodb' | 'redis' | 'meter' | 'account' | 'jobs' | 'worker'>;
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
    const metrics = input.metrics ?? new WorkerMetrics();
    if (config.meter.isEnabled) {
      const pumpRedis = redis;
      const shards = Array.from({ length: config.redis.shardCount }, (_, shard) => shard);
      metrics.watchFleet({ readLag: () => readStreamLag(pumpRedis, { shards }), stallAfterMs: config.worker.stallAfterMs });
    }
    const worker = await Worker.create({
      connection: input.connection,
      namespace: config.temporal.namespace,
      taskQueue,
      ...(input.workflowBundle === undefined ? { workflowsPath: workflowsPath() } : { workflowBundle: input.workflowBundle }),
      ...fleetSizing(config.worker),
      ...input.workerOptions,
      activities: tollgateActivities({ input, redis, dynamo, ledger, client, taskQueue, metrics }),
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

/**
 * Worker sizing for its fleet (issue 19): every pump stays cached, a pump
 * waiting on an idle stream holds an activity slot without starving the
 * others; workflow task slots stay moderate so that a cold worker replaying
 * the whole fleet (bounded runs) finishes each task it took well inside the task timeout.
 */
function fleetSizing(
  worker: AppConfig['worker'],
): Pick<
  WorkerOptions,
  | 'maxCachedWorkflows'
  | 'maxConcurrentWorkflowTaskExecutions'
  | 'maxConcurrentWorkflowTaskPolls'
  | 'maxConcurrentActivityTaskExecutions'
  | 'stickyQueueScheduleToStartTimeout'
> {
  return {
    stickyQueueScheduleToStartTimeout: worker.stickyTimeoutMs,
    maxCachedWorkflows: worker.maxCachedWorkflows,
    maxConcurrentWorkflowTaskExecutions: worker.workflowTaskSlots,
    maxConcurrentWorkflowTaskPolls: Math.min(10, worker.workflowTaskSlots),
    maxConcurrentActivityTaskExecutions: worker.activitySlots,
  };
}

/** Ensures a pump workflow runs for every group of METER_SHARDS_PER_PUMP shards (see ensureMeterWorkflows). */
export async function startMeterPumps(input: {
  config: Pick<AppConfig, 'temporal' | 'redis' | 'meter'>;
  client: Client;
  taskQueue?: string;
}): Promise<{ signalled: number; retired: number; retireError?: unknown }> {
  return ensureMeterWorkflows(input.client, {
    shards: Array.from({ length: input.config.redis.shardCount }, (_, shard) => shard),
    shardsPerPump: input.config.meter.shardsPerPump,
    taskQueue: input.taskQueue ?? input.config.temporal.taskQueue,
    settings: meterSettings(input.config),
  });
}

/** Ensures an `account/<tenant>` workflow runs for every tenant with stored settings. @returns how many */
export async function startAccountWorkflows(input: {
  config: Pick<AppConfig, 'temporal' | 'dynamodb' | 'account'>;
  client: Client;
  taskQueue?: string;
}): Promise<number> {
  const { config } = input;
  const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
  try {
    const tenants = await new DynamoAccountStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix }).listTenants();
    for (const tenant of tenants) {
      await ensureAccountWorkflow(input.client, {
        tenant,
        taskQueue: input.taskQueue ?? config.temporal.taskQueue,
        timings: accountTimings(config),
      });
    }
    return tenants.length;
  } finally {
    dynamo.destroy();
  }
}

/** Every activity of the tollgate worker, over its connections. */
function tollgateActivities(deps: {
  input: TollgateWorkerInput;
  redis: DeciderRedis;
  dynamo: DynamoDBClient;
  ledger: DynamoLedgerStore;
  client: Client;
  taskQueue: string;
  metrics: WorkerMetrics;
}) {
  const { input, redis, dynamo, ledger, client, taskQueue, metrics } = deps;
  const { config } = input;
  const pump = new UsagePump(redis, ledger, {
    batchSize: config.meter.batchSize,
    claimMinIdleMs: config.meter.claimMinIdleMs,
    ...(config.account.isEnabled ? { warningSink: new TemporalWarningSink(client, { taskQueue, timings: accountTimings(config) }) } : {}),
  });
  const jobStore = new DynamoJobStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
  const auditor = new MeteringAuditor(redis, dynamo, { shardCount: config.redis.shardCount, tablePrefix: config.dynamodb.tablePrefix });
  return {
    ...createMeteringActivities({
      pump,
      batchesInFlight: config.meter.batchesInFlight,
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
      sweepPage: async (page) => sweepOpenJobs({ client, store: jobStore, settings: config.jobs, nowMs: Date.now(), ...page }),
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
  };
}

export interface JobsWorkerInput {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  deps: JobActivityDeps;
  /** A prebuilt workflow bundle instead of bundling `workflowsPath()`. */
  workflowBundle?: { codePath: string };
}

/** Creates (but does not run) the worker of deferred jobs: every tollgate workflow, the job activities. */
export async function createJobsWorker(input: JobsWorkerInput): Promise<Worker> {
  return Worker.create({
    connection: input.connection,
    namespace: input.namespace,
    taskQueue: input.taskQueue,
    ...(input.workflowBundle === undefined ? { workflowsPath: workflowsPath() } : { workflowBundle: input.workflowBundle }),
    activities: { ...createJobActivities(input.deps) },
  });
}
