/**
 * The one configuration schema. Entry points call `loadConfig(process.env)`
 * once and pass typed slices down; no other module reads the environment.
 * Defaults exist only for local development; production-critical endpoints
 * (REDIS_URL, TEMPORAL_ADDRESS) have none, so a missing one stops startup.
 * `npm start` and the test setup supply them for the embedded stack.
 */
import type { z } from 'zod';
import { CONFIG_SCHEMA } from './config-schema.js';
import { ValidationError } from './errors.js';
import type { LogLevel } from './logger.js';

export { CONFIG_SCHEMA };

type RawConfig = z.infer<typeof CONFIG_SCHEMA>;

/** Typed configuration, grouped into the slices each component takes. */
export interface AppConfig {
  log: { level: LogLevel };
  api: {
    host: string;
    port: number;
    anonymous: 'reject' | 'ip-plan';
    demoKeysFile: string;
    /** The first admin token's file (written at a demo-seeded start). */
    adminTokenFile: string;
    isDemoSeeded: boolean;
    configPollMs: number;
    jobStatusPerSecond: number;
    unknownKeysPerSecond: number;
    trustedProxies: string;
    maxBodyBytes: number;
    /** Requests in flight above which each criticality is shed (sheddable ≤ default ≤ critical). */
    inFlight: { critical: number; default: number; sheddable: number };
    /** The deferral lane: deferrals (record + Temporal start) run at once, and how many more may wait. */
    deferralLane: { maxInFlight: number; maxQueued: number };
  };
  /** Gateway mode (TOLLGATE_UPSTREAM set): the upstream the API forwards admitted operations to; undefined serves the demo. */
  gateway: GatewayConfig | undefined;
  redis: {
    url: string;
    clusterNodes: { host: string; port: number }[] | undefined;
    /** Wall-clock timeout of every command on the decider's connection (DECIDER_MAX_WAIT_MS). */
    commandTimeoutMs: number;
    /** Redis' share of a decider call, not counting time the process is busy (DECIDER_TIMEOUT_MS). */
    deciderTimeoutMs: number;
    shardCount: number;
    /** WAIT for replicas after each decision (undefined: no WAIT). */
    waitForReplicas: { replicas: number; timeoutMs: number } | undefined;
    spoolPath: string;
    /** How often a non-empty spool is replayed (DECIDER_SPOOL_REPLAY_MS). */
    spoolReplayMs: number;
    /** The live instance count the backstop divides by (DECIDER_DEPLOYMENT, …_HEARTBEAT_MS, DECIDER_BACKSTOP_MIN_INSTANCES). */
    instances: { deployment: string; heartbeatMs: number; floor: number };
  };
  temporal: { address: string; namespace: string; taskQueue: string };
  dynamodb: { endpoint: string | undefined; region: string; tablePrefix: string };
  meter: {
    isEnabled: boolean;
    batchSize: number;
    /** Consecutive shards one pump workflow owns. */
    shardsPerPump: number;
    claimMinIdleMs: number;
    idleDelayMs: number;
    idleWaitMs: number;
    /** Pump batches one worker process runs at once. */
    batchesInFlight: number;
    iterationsPerRun: number;
    maxRunEvents: number;
    maxRunBytes: number;
    activityTimeoutMs: number;
    heartbeatTimeoutMs: number;
    maxTransactItems: number;
    transactionsInFlight: number;
  };
  audit: { isEnabled: boolean; intervalMs: number; scanCount: number; pagesPerRun: number; activityTimeoutMs: number };
  /** The worker process: its metrics port and how it is sized to its fleet. */
  worker: {
    metricsPort: number;
    maxCachedWorkflows: number;
    workflowTaskSlots: number;
    activitySlots: number;
    stallAfterMs: number;
    stickyTimeoutMs: number;
  };
  /** Deferred (202) jobs. */
  jobs: { taskQueue: string; ttlMs: number; retryMinMs: number; retryMaxMs: number; maxQueuedPerTenant: number };
  /** The sweep of unfinished deferred jobs. */
  jobSweep: { isEnabled: boolean; intervalMs: number; graceMs: number; pageSize: number; pagesPerRun: number; activityTimeoutMs: number };
  /** Account workflows. */
  account: {
    isEnabled: boolean;
    lateGraceMs: number;
    activityTimeoutMs: number;
    webhookTimeoutMs: number;
    webhookRetryInitialMs: number;
    webhookRetryMaxMs: number;
    webhookMaxAttempts: number;
    noAccountRecheckMs: number;
    wakeMaxJobs: number;
  };
}

/** Gateway mode: the upstream, where its schema and costs come from, what is forwarded, and how failures are charged. */
export interface GatewayConfig {
  upstreamUrl: string;
  /** The pinned SDL file; undefined: introspected at start. */
  schemaFile: string | undefined;
  costsFile: string | undefined;
  timeoutMs: number;
  failureCharge: 'minimum' | 'reserved';
  forwardHeaders: string[];
  identityHeaders: { tenant?: string; keyId?: string };
  readyCacheMs: number;
}

/** The gateway slice, or undefined without TOLLGATE_UPSTREAM. */
function gatewayConfig(raw: RawConfig): GatewayConfig | undefined {
  if (raw.TOLLGATE_UPSTREAM === undefined) return undefined;
  return {
    upstreamUrl: raw.TOLLGATE_UPSTREAM,
    schemaFile: raw.TOLLGATE_UPSTREAM_SCHEMA,
    costsFile: raw.TOLLGATE_COSTS,
    timeoutMs: raw.TOLLGATE_UPSTREAM_TIMEOUT_MS,
    failureCharge: raw.TOLLGATE_UPSTREAM_FAILURE_CHARGE,
    forwardHeaders: raw.TOLLGATE_FORWARD_HEADERS,
    identityHeaders: {
      ...(raw.TOLLGATE_TENANT_HEADER === undefined ? {} : { tenant: raw.TOLLGATE_TENANT_HEADER }),
      ...(raw.TOLLGATE_KEY_ID_HEADER === undefined ? {} : { keyId: raw.TOLLGATE_KEY_ID_HEADER }),
    },
    readyCacheMs: raw.TOLLGATE_READY_CACHE_MS,
  };
}

/** Variables that mean something only in gateway mode: set without TOLLGATE_UPSTREAM they are a mistake. */
const GATEWAY_ONLY = ['TOLLGATE_UPSTREAM_SCHEMA', 'TOLLGATE_COSTS', 'TOLLGATE_TENANT_HEADER', 'TOLLGATE_KEY_ID_HEADER'] as const;

/** The in-flight bound of each criticality: a share of the critical one, at least 1, sheddable never above default. */
function inFlightBounds(raw: RawConfig): AppConfig['api']['inFlight'] {
  const critical = raw.API_MAX_IN_FLIGHT;
  const share = (percent: number): number => Math.max(1, Math.floor((critical * percent) / 100));
  const defaultBound = share(raw.API_IN_FLIGHT_DEFAULT_PERCENT);
  return { critical, default: defaultBound, sheddable: Math.min(defaultBound, share(raw.API_IN_FLIGHT_SHEDDABLE_PERCENT)) };
}

/** The worker slice: its cache and activity slots follow the pump count unless set (every pump cached, each holding a slot). */
function workerConfig(raw: RawConfig): AppConfig['worker'] {
  const pumps = Math.ceil(raw.DECIDER_SHARDS / raw.METER_SHARDS_PER_PUMP);
  return {
    metricsPort: raw.WORKER_METRICS_PORT,
    maxCachedWorkflows: raw.WORKER_MAX_CACHED_WORKFLOWS ?? pumps + 128,
    workflowTaskSlots: raw.WORKER_WORKFLOW_TASK_SLOTS,
    activitySlots: raw.WORKER_ACTIVITY_SLOTS ?? pumps + 64,
    stallAfterMs: raw.WORKER_STALL_AFTER_MS,
    stickyTimeoutMs: raw.WORKER_STICKY_TIMEOUT_MS,
  };
}

function redisConfig(raw: RawConfig): AppConfig['redis'] {
  return {
    url: raw.REDIS_URL,
    clusterNodes: raw.REDIS_CLUSTER_NODES,
    commandTimeoutMs: raw.DECIDER_MAX_WAIT_MS,
    deciderTimeoutMs: raw.DECIDER_TIMEOUT_MS,
    shardCount: raw.DECIDER_SHARDS,
    waitForReplicas:
      raw.DECIDER_WAIT_REPLICAS === 0 ? undefined : { replicas: raw.DECIDER_WAIT_REPLICAS, timeoutMs: raw.DECIDER_WAIT_TIMEOUT_MS },
    spoolPath: raw.DECIDER_SPOOL_PATH,
    spoolReplayMs: raw.DECIDER_SPOOL_REPLAY_MS,
    instances: {
      deployment: raw.DECIDER_DEPLOYMENT,
      heartbeatMs: raw.DECIDER_INSTANCES_HEARTBEAT_MS,
      floor: raw.DECIDER_BACKSTOP_MIN_INSTANCES,
    },
  };
}

function toAppConfig(raw: RawConfig): AppConfig {
  return {
    log: { level: raw.LOG_LEVEL },
    api: {
      host: raw.API_HOST,
      port: raw.API_PORT,
      anonymous: raw.API_ANONYMOUS,
      demoKeysFile: raw.API_DEMO_KEYS_FILE,
      adminTokenFile: raw.API_ADMIN_TOKEN_FILE,
      isDemoSeeded: raw.API_DEMO_SEED === 'true',
      configPollMs: raw.API_CONFIG_POLL_MS,
      jobStatusPerSecond: raw.API_JOB_STATUS_PER_SECOND,
      unknownKeysPerSecond: raw.API_UNKNOWN_KEYS_PER_SECOND,
      trustedProxies: raw.API_TRUSTED_PROXIES,
      maxBodyBytes: raw.API_MAX_BODY_BYTES,
      inFlight: inFlightBounds(raw),
      deferralLane: { maxInFlight: raw.API_MAX_DEFERRALS_IN_FLIGHT, maxQueued: raw.API_MAX_DEFERRALS_QUEUED },
    },
    gateway: gatewayConfig(raw),
    redis: redisConfig(raw),
    temporal: { address: raw.TEMPORAL_ADDRESS, namespace: raw.TEMPORAL_NAMESPACE, taskQueue: raw.TEMPORAL_TASK_QUEUE },
    dynamodb: { endpoint: raw.DYNAMODB_ENDPOINT, region: raw.DYNAMODB_REGION, tablePrefix: raw.DYNAMODB_TABLE_PREFIX },
    meter: {
      isEnabled: raw.METER_ENABLED === 'true',
      batchSize: raw.METER_BATCH_SIZE,
      shardsPerPump: raw.METER_SHARDS_PER_PUMP,
      claimMinIdleMs: raw.METER_CLAIM_MIN_IDLE_MS ?? raw.METER_HEARTBEAT_TIMEOUT_MS,
      idleDelayMs: raw.METER_IDLE_DELAY_MS,
      idleWaitMs: raw.METER_IDLE_WAIT_MS,
      iterationsPerRun: raw.METER_ITERATIONS_PER_RUN,
      maxRunEvents: raw.METER_MAX_RUN_EVENTS,
      maxRunBytes: raw.METER_MAX_RUN_BYTES,
      activityTimeoutMs: raw.METER_ACTIVITY_TIMEOUT_MS,
      heartbeatTimeoutMs: raw.METER_HEARTBEAT_TIMEOUT_MS,
      batchesInFlight: raw.METER_BATCHES_IN_FLIGHT,
      maxTransactItems: raw.METER_MAX_TRANSACT_ITEMS,
      transactionsInFlight: raw.METER_TRANSACTIONS_IN_FLIGHT,
    },
    audit: {
      isEnabled: raw.AUDIT_ENABLED === 'true',
      intervalMs: raw.AUDIT_INTERVAL_MS,
      scanCount: raw.AUDIT_SCAN_COUNT,
      pagesPerRun: raw.AUDIT_PAGES_PER_RUN,
      activityTimeoutMs: raw.AUDIT_ACTIVITY_TIMEOUT_MS,
    },
    worker: workerConfig(raw),
    jobs: {
      taskQueue: raw.JOBS_TASK_QUEUE,
      ttlMs: raw.JOBS_TTL_MS,
      retryMinMs: raw.JOBS_RETRY_MIN_MS,
      retryMaxMs: Math.max(raw.JOBS_RETRY_MIN_MS, raw.JOBS_RETRY_MAX_MS),
      maxQueuedPerTenant: raw.JOBS_MAX_QUEUED_PER_TENANT,
    },
    jobSweep: {
      isEnabled: raw.JOBS_SWEEP_ENABLED === 'true',
      intervalMs: raw.JOBS_SWEEP_INTERVAL_MS,
      graceMs: raw.JOBS_SWEEP_GRACE_MS,
      pageSize: raw.JOBS_SWEEP_PAGE_SIZE,
      pagesPerRun: raw.JOBS_SWEEP_PAGES_PER_RUN,
      activityTimeoutMs: raw.JOBS_SWEEP_ACTIVITY_TIMEOUT_MS,
    },
    account: {
      isEnabled: raw.ACCOUNT_ENABLED === 'true',
      lateGraceMs: raw.ACCOUNT_LATE_GRACE_MS,
      activityTimeoutMs: raw.ACCOUNT_ACTIVITY_TIMEOUT_MS,
      webhookTimeoutMs: raw.ACCOUNT_WEBHOOK_TIMEOUT_MS,
      webhookRetryInitialMs: raw.ACCOUNT_WEBHOOK_RETRY_INITIAL_MS,
      webhookRetryMaxMs: Math.max(raw.ACCOUNT_WEBHOOK_RETRY_INITIAL_MS, raw.ACCOUNT_WEBHOOK_RETRY_MAX_MS),
      webhookMaxAttempts: raw.ACCOUNT_WEBHOOK_MAX_ATTEMPTS,
      noAccountRecheckMs: raw.ACCOUNT_NO_ACCOUNT_RECHECK_MS,
      wakeMaxJobs: raw.ACCOUNT_WAKE_MAX_JOBS,
    },
  };
}

/**
 * Parses the environment. Empty strings count as unset.
 * @throws ValidationError `CONFIG_INVALID` listing every bad or missing variable, one per line.
 */
export function loadConfig(env: Record<string, string | undefined>): AppConfig {
  const relevant: Record<string, string> = {};
  for (const name of Object.keys(CONFIG_SCHEMA.shape)) {
    const value = env[name];
    if (value !== undefined && value !== '') relevant[name] = value;
  }
  const result = CONFIG_SCHEMA.safeParse(relevant);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const name = issue.path.join('.');
      const message = issue.code === 'invalid_type' && relevant[name] === undefined ? 'is required' : issue.message;
      return `${name}: ${message}`;
    });
    throw new ValidationError('CONFIG_INVALID', `invalid configuration:\n${problems.join('\n')}`, {
      details: { problems },
    });
  }
  const strays = GATEWAY_ONLY.filter((name) => relevant[name] !== undefined && relevant['TOLLGATE_UPSTREAM'] === undefined);
  if (strays.length > 0) {
    const problems = strays.map((name) => `${name}: only meaningful with TOLLGATE_UPSTREAM (gateway mode), which is not set`);
    throw new ValidationError('CONFIG_INVALID', `invalid configuration:\n${problems.join('\n')}`, { details: { problems } });
  }
  return toAppConfig(result.data);
}

/** One row per variable, for the README table and `--help` output. */
export function describeConfig(): { name: string; defaultValue: string; description: string }[] {
  return Object.entries(CONFIG_SCHEMA.shape).map(([name, field]) => {
    const parsed = field.safeParse(undefined);
    const value: unknown = parsed.success ? parsed.data : undefined;
    const defaultValue = typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : '';
    return { name, defaultValue, description: field.description ?? '' };
  });
}
