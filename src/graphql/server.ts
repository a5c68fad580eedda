/**
 * The API process: `node --import tsx src/graphql/server.ts` (or the built
 * `dist/src/graphql/server.js`). Reads config once, refuses a Redis that may
 * evict keys, serves HTTP, and on SIGINT/SIGTERM stops accepting, drains, and
 * closes its clients.
 */
import { createServer } from 'node:http';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { FileSpool, ResilientDecider, assertNoEviction, createDeciderRedis, probeDecider } from '../decider/index.js';
import { DynamoAccountStore } from '../billing/index.js';
import { DynamoAuditStore, createDynamoClient, readStreamLag } from '../metering/index.js';
import { DependencyError, createLogger, loadConfig, parseTrustedProxies, systemClock } from '../shared/index.js';
import { forwardedClientIp } from './identity/client-address.js';
import { DynamoJobStore, type JobSettings } from '../jobs/index.js';
import { accountTimings, createJobsWorker, ensureAccountWorkflow } from '../workflows/index.js';
import { createApi } from './app.js';
import { DynamoResponseStore } from './idempotency/response-store.js';
import { createDemoSchema } from './demo/schema.js';
import { DynamoConfigStore } from './config/dynamo-config-store.js';
import { LiveConfig, announceConfigVersion } from './config/live-config.js';
import { DEMO_ACCOUNTS, DEMO_ANONYMOUS, createDemoSetup, seedDemoConfig, type DemoKey } from './demo/seed.js';
import { SchemaJobExecutor } from './jobs/executor.js';
import { TemporalDeferrer } from '../workflows/index.js';
import { TollgateMetrics } from './metrics.js';

/** The demo keys shown at the last start, if the file is there and readable (they are reused when still valid). */
function readDemoKeys(file: string): DemoKey[] {
  if (!existsSync(file)) return [];
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
    if (!Array.isArray(parsed)) return [];
    return parsed.filter(
      (entry): entry is DemoKey =>
        typeof entry === 'object' &&
        entry !== null &&
        typeof (entry as Record<string, unknown>)['tenant'] === 'string' &&
        typeof (entry as Record<string, unknown>)['keyId'] === 'string' &&
        typeof (entry as Record<string, unknown>)['planId'] === 'string' &&
        typeof (entry as Record<string, unknown>)['key'] === 'string',
    );
  } catch {
    return [];
  }
}

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

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger({ level: config.log.level, name: 'tollgate-api' });
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
  // Every (re)connection re-checks the eviction policy: an evicting Redis
  // would hand out free quota and drop usage, so the process stops.
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
    // A sick limiter must not keep the API down: serve (decisions degrade per
    // policy) and let /ready report Redis until it is back.
    logger.error({ code: 'REDIS_UNAVAILABLE', url: redactUrl(config.redis.url) }, 'redis unreachable at startup; serving degraded');
  }
  const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
  const temporal = Connection.lazy({ address: config.temporal.address });
  const decider = new ResilientDecider(redis, {
    shardCount: config.redis.shardCount,
    clock: systemClock,
    logger,
    spool: new FileSpool(resolve(config.redis.spoolPath)),
    waitForReplicas: config.redis.waitForReplicas,
  });
  // Stream lag is read from Redis on scrape (cached 5 s: at most 2 round trips per shard per 5 s);
  // audit drift from the report the audit workflow stores (the pump and the audit run in the worker).
  const auditStore = new DynamoAuditStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
  const allShards = Array.from({ length: config.redis.shardCount }, (_, shard) => shard);
  const metrics = new TollgateMetrics({
    breakerState: () => decider.breaker.current,
    streamLag: () => readStreamLag(redis, { shards: allShards }),
    auditReport: () => auditStore.latest('all'),
  });
  // Plans and API keys live in the config table and are followed live (announced on Redis, polled).
  // The demo's plans and one key per demo tenant are stored there unless API_DEMO_SEED=false; the keys
  // are shown once, in a file only this user can read, never in a log line, and reused across restarts.
  const configStore = new DynamoConfigStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
  const demo = createDemoSetup({ hasKeys: false });
  if (config.api.isDemoSeeded) {
    const keysFile = resolve(config.api.demoKeysFile);
    const keys = await seedDemoConfig(configStore, readDemoKeys(keysFile), Date.now());
    mkdirSync(dirname(keysFile), { recursive: true });
    writeFileSync(keysFile, `${JSON.stringify(keys, null, 2)}\n`, { mode: 0o600 });
    chmodSync(keysFile, 0o600);
    logger.info({ file: keysFile, tenants: keys.map((key) => key.tenant) }, 'demo API keys written');
  }
  const liveConfig = new LiveConfig({ store: configStore, logger, redis, pollMs: config.api.configPollMs });
  await liveConfig.start();
  await announceConfigVersion(redis, liveConfig.version()).catch(() => undefined);
  // Deferred (202) jobs: recorded in DynamoDB, run by `job/<tenant>/<jobId>` workflows whose
  // activities this process hosts (they execute against this API's schema).
  const jobStore = new DynamoJobStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
  const jobSettings: JobSettings = { ...config.jobs };
  const deferrer = new TemporalDeferrer({
    client: new Client({ connection: temporal, namespace: config.temporal.namespace }),
    store: jobStore,
    settings: jobSettings,
  });
  const jobExecutor = new SchemaJobExecutor({
    schema: createDemoSchema({ store: demo.store, version: packageVersion(), deciderTimeMs: async () => (await probeDecider(redis)).nowMs, clock: systemClock, jobs: jobStore }),
    plans: liveConfig,
  });
  let isStopping = false;
  let workerConnection: NativeConnection | undefined;
  let jobsWorker: Worker | undefined;
  let jobsWorkerRun: Promise<void> = Promise.resolve();
  // Temporal down at start must not keep the API down: it serves (deferrals answer 429 while
  // Temporal is unreachable, /ready reports it) and the jobs worker is retried every 5 s.
  const startJobsWorker = async (): Promise<void> => {
    try {
      workerConnection = await NativeConnection.connect({ address: config.temporal.address });
      jobsWorker = await createJobsWorker({
        connection: workerConnection,
        namespace: config.temporal.namespace,
        taskQueue: config.jobs.taskQueue,
        deps: {
          decider,
          store: jobStore,
          executor: jobExecutor,
          accounts: new DynamoAccountStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix }),
          webhookTimeoutMs: config.account.webhookTimeoutMs,
        },
      });
    } catch (error) {
      await workerConnection?.close().catch(() => undefined);
      workerConnection = undefined;
      logger.error({ code: 'TEMPORAL_UNAVAILABLE', err: error instanceof Error ? error.message : String(error) }, 'jobs worker could not start; retrying in 5 s');
      if (!isStopping) setTimeout(() => void startJobsWorker(), 5_000).unref();
      return;
    }
    jobsWorkerRun = jobsWorker.run().catch((error: unknown) => {
      logger.error({ code: 'TEMPORAL_UNAVAILABLE', err: error instanceof Error ? error.message : String(error) }, 'jobs worker stopped; exiting');
      process.exit(1);
    });
    logger.info({ taskQueue: config.jobs.taskQueue }, 'jobs worker polling');
  };
  await startJobsWorker();
  // The demo tenants' accounts (billing period, price) and their account workflows
  // (warnings, period close), unless API_DEMO_SEED=false. Best effort: the API serves without them.
  if (config.account.isEnabled && config.api.isDemoSeeded) {
    try {
      const accounts = new DynamoAccountStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
      for (const account of DEMO_ACCOUNTS) await accounts.put(account, Date.now());
      const accountClient = new Client({ connection: temporal, namespace: config.temporal.namespace });
      for (const account of DEMO_ACCOUNTS) {
        await ensureAccountWorkflow(accountClient, { tenant: account.tenant, taskQueue: config.temporal.taskQueue, timings: accountTimings(config) });
      }
      logger.info({ tenants: DEMO_ACCOUNTS.map((account) => account.tenant) }, 'demo accounts stored, account workflows running');
    } catch (error) {
      logger.error({ err: error instanceof Error ? error.message : String(error) }, 'demo accounts could not be set up');
    }
  }

  const trustedProxies = parseTrustedProxies(config.api.trustedProxies);
  if (trustedProxies.entries.length > 0) logger.info({ trustedProxies: trustedProxies.entries }, 'client addresses taken from X-Forwarded-For behind these proxies');
  const api = createApi({
    redis,
    dynamo,
    tablePrefix: config.dynamodb.tablePrefix,
    temporal,
    logger,
    version: packageVersion(),
    decider,
    keyStore: liveConfig,
    plans: liveConfig,
    store: demo.store,
    deferrer,
    jobs: jobStore,
    jobStatusPerSecond: config.api.jobStatusPerSecond,
    unknownKeysPerSecond: config.api.unknownKeysPerSecond,
    tollgate: { clientIp: forwardedClientIp(trustedProxies) },
    metrics,
    responses: new DynamoResponseStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix }),
    ...(config.api.anonymous === 'ip-plan' ? { anonymous: { kind: 'ip-plan', ...DEMO_ANONYMOUS } } : {}),
  });

  const server = createServer(api.requestListener);
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(config.api.port, config.api.host, () => resolveListen());
  });
  logger.info({ url: `http://${config.api.host}:${config.api.port}/graphql` }, 'api listening');

  const stop = (signal: string): void => {
    if (isStopping) return;
    isStopping = true;
    logger.info({ signal }, 'api stopping');
    server.close(() => {
      if (jobsWorker?.getState() === 'RUNNING') jobsWorker.shutdown();
      void jobsWorkerRun.finally(() => {
        liveConfig.close();
        redis.disconnect();
        dynamo.destroy();
        void Promise.allSettled([temporal.close(), workerConnection?.close()]).finally(() => process.exit(0));
      });
    });
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 10_000).unref();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

const isEntryPoint = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isEntryPoint) {
  main().catch((error: unknown) => {
    console.error(`tollgate-api: failed to start: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
