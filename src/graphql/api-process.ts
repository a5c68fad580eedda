/**
 * The API process's steps, run in this order by its entry point `server.ts`:
 * connect Redis, build the dependencies, start the deferred jobs' worker,
 * listen, and stop on SIGINT/SIGTERM. Each step logs what an operator needs;
 * none reads `process.env` (the entry point parses the config once).
 */
import type { RequestListener, Server } from 'node:http';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { DynamoAccountStore, DynamoPeriodStore, DynamoWarningReader } from '../billing/index.js';
import { type ResilientDecider, assertNoEviction, createDeciderRedis, type DeciderRedis } from '../decider/index.js';
import { DeferralLane, DynamoJobStore, type JobSettings } from '../jobs/index.js';
import { DynamoAuditStore, DynamoUsageReader, createDynamoClient, readStreamLag } from '../metering/index.js';
import { DependencyError, parseTrustedProxies, systemClock, type AppConfig, type Logger } from '../shared/index.js';
import { TemporalDeferrer, createJobsWorker, routeTemporalLogs } from '../workflows/index.js';
import { Admission } from './admission.js';
import { createApi, type ApiServer, type ApiSurface } from './app.js';
import { startDegradedMode, type DegradedMode } from './degraded-mode.js';
import { DynamoAdminStore } from './config/admin-store.js';
import { DynamoConfigStore } from './config/dynamo-config-store.js';
import { LiveConfig, announceConfigVersion } from './config/live-config.js';
import { DynamoPlanAdmin } from './config/plan-history.js';
import { DynamoRollouts } from './config/rollouts.js';
import { DynamoResponseStore } from './idempotency/response-store.js';
import { forwardedClientIp } from './identity/client-address.js';
import { SchemaJobExecutor } from './jobs/executor.js';
import { TollgateMetrics } from './metrics.js';
import type { ProcessSurface } from './surface.js';
import { ActivityRecorder } from './usage/activity.js';
import { DynamoJobList } from './usage/jobs-list.js';
import { DynamoReceiptSearch } from './usage/receipt-search.js';
import { UsageService } from './usage/usage-service.js';
// the dashboard (issue 18): sessions behind cookie auth of /usage and /admin, and /dashboard itself
import { createDashboardRoutes, createDashboardSessions, tenantFromSession, type DashboardSessions } from './dashboard/index.js';

/** The parsed config and the process's logger: what every step reads. */
export interface ApiProcessContext {
  config: AppConfig;
  logger: Logger;
}

/** The tenant and plan of anonymous callers with `API_ANONYMOUS=ip-plan` (the demo seeds this plan; gateway mode needs it stored). */
const ANONYMOUS = { tenant: 'anonymous', planId: 'anonymous' } as const;

/** Drops credentials from a Redis URL before it is logged. */
function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

/** The version in package.json (`src/graphql` runs from the repo, or from `dist/src/graphql` when built). */
function packageVersion(): string {
  for (const path of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'tollgate' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // try the next location
    }
  }
  return '0.0.0';
}

/**
 * Connects the decider's Redis and checks its eviction policy, at start and
 * on every reconnection: an evicting Redis would hand out free quota and drop
 * usage, so the process exits 1. An unreachable Redis does not stop the start
 * (decisions degrade per policy and `/ready` reports it).
 * @throws DependencyError when Redis answers but may evict keys
 */
export async function connectRedis({ config, logger }: ApiProcessContext): Promise<DeciderRedis> {
  const redis = createDeciderRedis({
    url: config.redis.url,
    clusterNodes: config.redis.clusterNodes,
    commandTimeoutMs: config.redis.commandTimeoutMs,
  });
  // Log a lost connection once, not once per reconnect attempt.
  let isRedisErrorLogged = false;
  redis.on('error', (error: Error) => {
    if (isRedisErrorLogged) return;
    isRedisErrorLogged = true;
    logger.warn({ code: 'REDIS_UNAVAILABLE', err: error.message }, 'redis connection error; reconnecting');
  });
  redis.on('ready', () => {
    isRedisErrorLogged = false;
    assertNoEviction(redis).catch((error: unknown) => {
      if (error instanceof DependencyError && error.code === 'DEPENDENCY_FAILED') {
        logger.error({ code: error.code, err: error.message }, 'refusing to run against an evicting Redis');
        process.exit(1);
      }
    });
  });
  try {
    await redis.connect();
    await assertNoEviction(redis);
  } catch (error) {
    if (error instanceof DependencyError) throw error;
    logger.error({ code: 'REDIS_UNAVAILABLE', url: redactUrl(config.redis.url) }, 'redis unreachable at startup; serving degraded');
  }
  return redis;
}

/** Everything the API process runs on; each client is closed by `stopOnSignals`. */
export interface ApiProcessDeps extends ApiProcessContext {
  version: string;
  redis: DeciderRedis;
  dynamo: DynamoDBClient;
  /** Lazy: connects on first use, so Temporal down at start does not stop the API. */
  temporal: Connection;
  decider: ResilientDecider;
  /** The spool's replays, the backstop's instance count, and what /metrics and /ready show of them. */
  degraded: DegradedMode;
  metrics: TollgateMetrics;
  liveConfig: LiveConfig;
  jobStore: DynamoJobStore;
  /** The Temporal deferrer behind this instance's deferral lane (`API_MAX_DEFERRALS_*`). */
  deferrer: DeferralLane;
  jobExecutor: SchemaJobExecutor;
  /** What `/graphql` serves: the demo's schema (demo mode) or the upstream's (gateway mode). */
  api: ApiSurface;
  /** The in-flight bound of this instance (`API_MAX_IN_FLIGHT`, by criticality). */
  admission: Admission;
  /** What `/graphql` serves: the demo, or an upstream in gateway mode (`surface.ts`). */
  surface: ProcessSurface;
  /** Denials, rollout would-denials and keys' last use, counted in memory and flushed to Redis each second. */
  activity: ActivityRecorder;
  /** Dashboard sessions (cookie auth of `/usage/graphql` and `/admin/graphql`). */
  sessions: DashboardSessions;
}

/**
 * Builds the API's dependencies over a connected Redis: DynamoDB, Temporal,
 * the decider, the metrics, the live config (seeding the demo's plans and keys
 * unless `API_DEMO_SEED=false`) and the deferred jobs.
 * @throws DependencyError when the config table cannot be read or seeded
 */
export async function buildApiDeps(input: ApiProcessContext & { redis: DeciderRedis; surface: ProcessSurface }): Promise<ApiProcessDeps> {
  const { config, logger, redis, surface } = input;
  const version = packageVersion();
  const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
  const temporal = Connection.lazy({ address: config.temporal.address });
  const degraded = await startDegradedMode({ config, logger, redis });
  const { decider } = degraded;
  // Stream lag is read from Redis on scrape (cached 5 s: at most 2 round trips per shard per 5 s);
  // audit drift from the report the audit workflow stores (the pump and the audit run in the worker).
  const auditStore = new DynamoAuditStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
  const allShards = Array.from({ length: config.redis.shardCount }, (_, shard) => shard);
  const admission = new Admission(config.api.inFlight);
  // Deferred (202) jobs: recorded in DynamoDB, run by `job/<tenant>/<jobId>` workflows whose
  // activities this process hosts (they execute against this API's schema). A flood of deferrals
  // waits in a bounded lane, beyond which it is refused before anything is recorded (issue 14).
  const jobStore = new DynamoJobStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
  const jobSettings: JobSettings = { ...config.jobs };
  const deferrer = new DeferralLane(
    new TemporalDeferrer({
      client: new Client({ connection: temporal, namespace: config.temporal.namespace }),
      store: jobStore,
      settings: jobSettings,
    }),
    config.api.deferralLane,
  );
  const metrics = new TollgateMetrics({
    inFlight: () => admission.current,
    deferralLane: () => deferrer.state(),
    breakerState: () => decider.breaker.current,
    degraded: degraded.gauges,
    streamLag: () => readStreamLag(redis, { shards: allShards }),
    auditReport: () => auditStore.latest('all'),
    isProcessObserved: true,
  });
  // Plans and API keys live in the config table and are followed live (announced on Redis, polled).
  const configStore = new DynamoConfigStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
  // the demo's plans and keys seeded, and its schema served, in demo mode only (gateway mode never loads it)
  if (surface.kind === 'demo' && config.api.isDemoSeeded)
    await surface.demo.seedDemoKeys({
      store: configStore,
      keysFile: resolve(config.api.demoKeysFile),
      logger,
      tenants: new DynamoAdminStore(dynamo, configStore, { tablePrefix: config.dynamodb.tablePrefix }),
    });
  const prefix = { tablePrefix: config.dynamodb.tablePrefix };
  const plans = new DynamoPlanAdmin(dynamo, configStore, prefix);
  const rollouts = new DynamoRollouts({ client: dynamo, config: configStore, plans, redis }, prefix);
  const liveConfig = new LiveConfig({ store: configStore, logger, redis, pollMs: config.api.configPollMs, rollouts });
  await liveConfig.start();
  await announceConfigVersion(redis, liveConfig.version()).catch(() => undefined);
  const activity = new ActivityRecorder({
    redis,
    logger,
    instance: `${hostname()}:${config.api.port}:${process.pid}`,
    rolloutOf: (planId) => liveConfig.rolloutOf(planId),
  });
  // degraded-mode periods, fleet-wide (the admin API's operations { fleet })
  decider.breaker.onChange((state) => activity.breakerChanged(state));
  activity.start();
  const api =
    surface.kind === 'gateway'
      ? surface.api
      : surface.demo.demoSurface({ store: surface.demo.createDemoSetup({ hasKeys: false }).store, version, redis, jobs: jobStore });
  const jobExecutor = new SchemaJobExecutor({
    ...(surface.kind === 'gateway' ? surface.jobs : { schema: api.schema }),
    plans: liveConfig,
  });
  return {
    config,
    logger,
    version,
    redis,
    dynamo,
    temporal,
    decider,
    degraded,
    metrics,
    liveConfig,
    jobStore,
    deferrer,
    jobExecutor,
    api,
    admission,
    surface,
    activity,
    sessions: createDashboardSessions({ redis, dynamo, tablePrefix: config.dynamodb.tablePrefix, keyStore: liveConfig }),
  };
}

/** `/dashboard` (the built page and its sessions) in front of `next` (issue 18). */
export function mountDashboard(deps: ApiProcessDeps, next: RequestListener): RequestListener {
  return createDashboardRoutes({ sessions: deps.sessions, logger: deps.logger, trustedProxies: deps.config.api.trustedProxies }).route(
    next,
  );
}

/**
 * The worker hosting the deferred jobs' activities. Temporal down at start
 * must not keep the API down: it serves (deferrals answer 429 while Temporal
 * is unreachable, `/ready` reports it) and the worker is retried every 5 s
 * until the process stops. A worker that stops while running exits the process 1.
 */
export class JobsWorker {
  private isStopping = false;
  private connection: NativeConnection | undefined;
  private worker: Worker | undefined;
  private running: Promise<void> = Promise.resolve();

  constructor(private readonly deps: ApiProcessDeps) {}

  /** Connects and starts polling; on failure logs and schedules another try (never throws). */
  async start(): Promise<void> {
    const { config, logger, dynamo } = this.deps;
    let worker: Worker;
    routeTemporalLogs(logger);
    try {
      this.connection = await NativeConnection.connect({ address: config.temporal.address });
      worker = await createJobsWorker({
        connection: this.connection,
        namespace: config.temporal.namespace,
        taskQueue: config.jobs.taskQueue,
        deps: {
          decider: this.deps.decider,
          store: this.deps.jobStore,
          executor: this.deps.jobExecutor,
          accounts: new DynamoAccountStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix }),
          webhookTimeoutMs: config.account.webhookTimeoutMs,
        },
      });
    } catch (error) {
      await this.connection?.close().catch(() => undefined);
      this.connection = undefined;
      logger.error(
        { code: 'TEMPORAL_UNAVAILABLE', err: error instanceof Error ? error.message : String(error) },
        'jobs worker could not start; retrying in 5 s',
      );
      if (!this.isStopping) setTimeout(() => void this.start(), 5_000).unref();
      return;
    }
    this.worker = worker;
    this.running = worker.run().catch((error: unknown) => {
      logger.error(
        { code: 'TEMPORAL_UNAVAILABLE', err: error instanceof Error ? error.message : String(error) },
        'jobs worker stopped; exiting',
      );
      process.exit(1);
    });
    logger.info({ taskQueue: config.jobs.taskQueue }, 'jobs worker polling');
  }

  /** Schedules no further start attempt (one already scheduled still runs). */
  stopRetrying(): void {
    this.isStopping = true;
  }

  /** Stops polling; resolves once in-flight activities have finished (at once when it never ran). */
  drain(): Promise<void> {
    if (this.worker?.getState() === 'RUNNING') this.worker.shutdown();
    return this.running;
  }

  /** Closes the worker's connection, if it has one. */
  close(): Promise<void> | undefined {
    return this.connection?.close();
  }
}

/** The HTTP surface over the process's dependencies, with client addresses taken as `API_TRUSTED_PROXIES` says. */
export function createProcessApi(deps: ApiProcessDeps): ApiServer {
  const { config, logger } = deps;
  const trustedProxies = parseTrustedProxies(config.api.trustedProxies);
  if (trustedProxies.entries.length > 0)
    logger.info({ trustedProxies: trustedProxies.entries }, 'client addresses taken from X-Forwarded-For behind these proxies');
  return createApi({
    redis: deps.redis,
    dynamo: deps.dynamo,
    tablePrefix: config.dynamodb.tablePrefix,
    temporal: deps.temporal,
    logger,
    version: deps.version,
    decider: deps.decider,
    readiness: deps.degraded.readiness,
    keyStore: deps.liveConfig,
    plans: deps.liveConfig,
    deferrer: deps.deferrer,
    jobs: deps.jobStore,
    jobStatusPerSecond: config.api.jobStatusPerSecond,
    unknownKeysPerSecond: config.api.unknownKeysPerSecond,
    tollgate: {
      clientIp: forwardedClientIp(trustedProxies),
      admission: deps.admission,
      onDecided: (event) => deps.activity.record(event),
      onSettled: (input, refund) => deps.activity.settled(input, refund),
      ...(deps.surface.kind === 'gateway' ? deps.surface.tollgate : {}),
    },
    surface: deps.api,
    metrics: deps.metrics,
    usage: new UsageService({
      redis: deps.redis,
      shardCount: config.redis.shardCount,
      accounts: new DynamoAccountStore(deps.dynamo, { tablePrefix: config.dynamodb.tablePrefix }),
      periods: new DynamoPeriodStore(deps.dynamo, { tablePrefix: config.dynamodb.tablePrefix }),
      warnings: new DynamoWarningReader(deps.dynamo, { tablePrefix: config.dynamodb.tablePrefix }),
      reader: new DynamoUsageReader(deps.dynamo, { tablePrefix: config.dynamodb.tablePrefix }),
      clock: systemClock,
      jobs: new DynamoJobList(deps.dynamo, { tablePrefix: config.dynamodb.tablePrefix }),
      receiptSearch: new DynamoReceiptSearch(deps.dynamo, { tablePrefix: config.dynamodb.tablePrefix }),
    }),
    usageSession: tenantFromSession(deps.sessions),
    responses: new DynamoResponseStore(deps.dynamo, { tablePrefix: config.dynamodb.tablePrefix }),
    ...(config.api.anonymous === 'ip-plan' ? { anonymous: { kind: 'ip-plan', ...ANONYMOUS } } : {}),
  });
}

/**
 * Listens on `API_HOST:API_PORT` and logs the GraphQL URL.
 * @throws the server's error (e.g. EADDRINUSE) when it cannot listen
 */
export async function listen(server: Server, { config, logger }: ApiProcessContext): Promise<void> {
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(config.api.port, config.api.host, () => resolveListen());
  });
  logger.info({ url: `http://${config.api.host}:${config.api.port}/graphql` }, 'api listening');
}

/**
 * On the first SIGINT or SIGTERM: stops accepting, lets in-flight requests and
 * the jobs worker's activities finish, closes every client and exits 0; exits
 * 0 after 10 s whatever is still running.
 */
export function stopOnSignals(input: { server: Server; deps: ApiProcessDeps; jobsWorker: JobsWorker }): void {
  const { server, deps, jobsWorker } = input;
  let isStopping = false;
  const stop = (signal: string): void => {
    if (isStopping) return;
    isStopping = true;
    jobsWorker.stopRetrying();
    deps.logger.info({ signal }, 'api stopping');
    server.close(() => {
      void jobsWorker.drain().finally(() => {
        deps.liveConfig.close();
        // the activity counters' last flush lands before Redis is closed and the process exits
        const flushed = deps.activity.close();
        void Promise.allSettled([flushed, deps.degraded.stop()]).finally(() => deps.redis.disconnect());
        deps.dynamo.destroy();
        void Promise.allSettled([flushed, deps.temporal.close(), jobsWorker.close()]).finally(() => process.exit(0));
      });
    });
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 10_000).unref();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
