/**
 * The one configuration schema: every environment variable, its default (for local development only) and a
 * description. Production-critical endpoints (REDIS_URL, TEMPORAL_ADDRESS) have no default. `config.ts`
 * parses the environment with it once and maps the result to typed slices.
 */
import { z } from 'zod';
import { parseTrustedProxies } from './client-address.js';
import { GATEWAY_CONFIG_FIELDS } from './config-schema-gateway.js';

const port = z.coerce.number().int().min(1).max(65_535);
const positiveInt = z.coerce.number().int().positive();

const hostPortList = z.string().transform((raw, ctx) => {
  const nodes: { host: string; port: number }[] = [];
  for (const part of raw
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '')) {
    const match = /^([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(part);
    const portNumber = Number(match?.[2]);
    if (match === null || match[1] === undefined || portNumber < 1 || portNumber > 65_535) {
      ctx.addIssue({ code: 'custom', message: `'${part}' is not host:port` });
      return z.NEVER;
    }
    nodes.push({ host: match[1], port: portNumber });
  }
  if (nodes.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'needs at least one host:port' });
    return z.NEVER;
  }
  return nodes;
});

/** Every environment variable tollgate's processes read, with its meaning. */
export const CONFIG_SCHEMA = z.object({
  LOG_LEVEL: z
    .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
    .default('info')
    .describe('Minimum level of the JSON log lines written to stdout.'),
  API_HOST: z.string().min(1).default('127.0.0.1').describe('Interface the GraphQL API listens on.'),
  API_PORT: port.default(4000).describe('TCP port of the GraphQL API, /health, /ready and /metrics.'),
  API_ANONYMOUS: z
    .enum(['reject', 'ip-plan'])
    .default('reject')
    .describe('Requests without an API key: reject (401 API_KEY_REQUIRED) or meter them per client address under the anonymous plan.'),
  API_DEMO_SEED: z
    .enum(['true', 'false'])
    .default('true')
    .describe(
      'Store the demo plans and one key per demo tenant in the config table at start (reusing the keys in API_DEMO_KEYS_FILE when they are still valid).',
    ),
  API_CONFIG_POLL_MS: positiveInt
    .default(5_000)
    .describe('How often an API instance reads the config version (plans and keys) in case an announcement on Redis was lost, ms.'),
  API_JOB_STATUS_PER_SECOND: positiveInt
    .default(10)
    .describe(
      'GET /jobs/<id> reads per second per API key on each API instance (burst twice that); more get 429 RATE_LIMITED. Finished jobs are served from memory.',
    ),
  API_UNKNOWN_KEYS_PER_SECOND: positiveInt
    .default(5)
    .describe(
      'Unknown API keys one client address may present per second on each API instance (burst twice that); beyond it, keys not in the lookup cache get 429 TOO_MANY_UNKNOWN_KEYS without a key store read.',
    ),
  API_MAX_BODY_BYTES: positiveInt
    .max(16_777_216)
    .default(65_536)
    .describe(
      'Largest request body the API reads, bytes; a larger one is refused with 413 REQUEST_TOO_LARGE before it is parsed (Content-Length checked first, a chunked body counted while read) and its connection closed. The default holds a document at the token cap and a deferred job submission (32,000 chars) twice over.',
    ),
  API_MAX_IN_FLIGHT: positiveInt
    .max(100_000)
    .default(128)
    .describe(
      'GraphQL requests one API instance works on at once (admitted, not yet answered); beyond it even critical requests are shed with 503 OVERLOADED and Retry-After, before pricing and the decider. At ~0.33 ms of CPU per request (BENCHMARKS.md), 128 queued requests wait at most ~40 ms, under DECIDER_TIMEOUT_MS.',
    ),
  API_IN_FLIGHT_DEFAULT_PERCENT: positiveInt
    .max(100)
    .default(75)
    .describe(
      "Share of API_MAX_IN_FLIGHT (percent, rounded down, at least 1) above which requests of plans with criticality 'default' are shed.",
    ),
  API_IN_FLIGHT_SHEDDABLE_PERCENT: positiveInt
    .max(100)
    .default(50)
    .describe(
      "Share of API_MAX_IN_FLIGHT (percent, rounded down, at least 1) above which requests of plans with criticality 'sheddable' are shed (a value above API_IN_FLIGHT_DEFAULT_PERCENT acts as it).",
    ),
  API_MAX_DEFERRALS_IN_FLIGHT: positiveInt
    .max(10_000)
    .default(16)
    .describe(
      'Deferrals (a job recorded in DynamoDB and its workflow started on Temporal) one API instance runs at once; more wait in its deferral lane, first come first served.',
    ),
  API_MAX_DEFERRALS_QUEUED: z.coerce
    .number()
    .int()
    .min(0)
    .max(100_000)
    .default(64)
    .describe(
      'Deferrals that may wait for a slot of the deferral lane; beyond them a deferral is refused with 503 OVERLOADED and Retry-After before anything is recorded or charged (counted in tollgate_shed_total{reason="deferral-lane"}).',
    ),
  API_TRUSTED_PROXIES: z
    .string()
    .default('')
    .superRefine((value, context) => {
      try {
        parseTrustedProxies(value);
      } catch (error) {
        context.addIssue({ code: 'custom', message: error instanceof Error ? error.message : String(error) });
      }
    })
    .describe(
      'Comma-separated addresses and CIDR ranges of the reverse proxies in front of the API (e.g. 10.0.0.0/8,127.0.0.1). A request from one of them is attributed to the right-most untrusted address of X-Forwarded-For; empty: the socket address, and X-Forwarded-For is ignored.',
    ),
  API_DEMO_KEYS_FILE: z
    .string()
    .min(1)
    .default('.data/demo-keys.json')
    .describe("Where the API writes the demo tenants' API keys it generates at start (mode 0600; keys are never logged)."),
  API_ADMIN_TOKEN_FILE: z
    .string()
    .min(1)
    .default('.data/admin-token.json')
    .describe(
      'Where the API writes the first admin token (for /admin/graphql and the tollgate CLI) when API_DEMO_SEED=true and the file holds no valid token (mode 0600; never logged).',
    ),
  ...GATEWAY_CONFIG_FIELDS,
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, 'must start with redis:// or rediss://')
    .describe('Redis for the decider (single node). Required; `npm start` sets it to the embedded Redis.'),
  REDIS_CLUSTER_NODES: hostPortList
    .optional()
    .describe('Comma-separated host:port seeds of a Redis Cluster; when set, the decider uses the cluster instead of REDIS_URL.'),
  DECIDER_TIMEOUT_MS: positiveInt
    .max(10_000)
    .default(50)
    .describe(
      "Redis' share of one decider call, in ms: the call fails (its decisions degrade) once the event loop has waited this long for the reply with nothing else to do; time the API spends busy with other work does not count. A call over half of it is slow (5 slow calls in a row open the breaker).",
    ),
  DECIDER_MAX_WAIT_MS: positiveInt
    .max(60_000)
    .default(1_000)
    .describe(
      "Wall-clock cap of every command on the decider's Redis connection, in ms, however busy the API is. Past it the call fails: when Redis had at least half of the wait its decisions degrade, otherwise this process was busy and its requests are shed (503 OVERLOADED, never charged, no breaker event); keep it above DECIDER_TIMEOUT_MS.",
    ),
  DECIDER_SPOOL_PATH: z
    .string()
    .min(1)
    .default('.data/spool/decider.spool')
    .describe(
      'Local append-only file of usage admitted while Redis is unreachable, replayed when it is back, at start and every DECIDER_SPOOL_REPLAY_MS while it holds entries. One per API instance: an instance refuses to start on a spool another live process holds.',
    ),
  DECIDER_SPOOL_REPLAY_MS: positiveInt
    .min(100)
    .max(3_600_000)
    .default(5_000)
    .describe(
      'How often an API instance retries replaying a non-empty spool into Redis (also done at start and when the breaker closes), ms.',
    ),
  DECIDER_DEPLOYMENT: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must be a lower-case name of at most 64 characters')
    .default('api')
    .describe('Name of the API deployment whose instances share the limits: they count each other by heartbeats on Redis.'),
  DECIDER_INSTANCES_HEARTBEAT_MS: positiveInt
    .min(50)
    .max(600_000)
    .default(2_000)
    .describe(
      'How often an API instance heartbeats and reads the count of live instances (silent for 3 heartbeats: not counted), ms. The local backstop divides each limit by the last count read.',
    ),
  DECIDER_BACKSTOP_MIN_INSTANCES: positiveInt
    .max(10_000)
    .default(1)
    .describe(
      'Floor of the instance count the local backstop divides limits by, and the count of an instance started while Redis is unreachable that never read one: set it to the fewest instances the deployment runs.',
    ),
  DECIDER_SHARDS: positiveInt
    .max(16_384)
    .default(256)
    .describe('Number of logical shards (hash tags) usage keys and streams are spread over. Fixed for the life of the data.'),
  DECIDER_WAIT_REPLICAS: z.coerce
    .number()
    .int()
    .min(0)
    .max(16)
    .default(0)
    .describe(
      'After each decision script, WAIT until this many replicas hold its writes (0: no WAIT; AOF fsync is the Redis setting appendfsync).',
    ),
  DECIDER_WAIT_TIMEOUT_MS: positiveInt
    .max(10_000)
    .default(20)
    .describe(
      'Longest WAIT for DECIDER_WAIT_REPLICAS, in ms; keep it below DECIDER_TIMEOUT_MS. A shortfall is reported, the decision stands.',
    ),
  TEMPORAL_ADDRESS: z
    .string()
    .regex(/^[A-Za-z0-9.[\]:-]+:\d{1,5}$/, 'must be host:port')
    .describe('Temporal frontend gRPC address. Required; `npm start` sets it to the embedded dev server.'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default').describe('Temporal namespace of every tollgate workflow.'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('tollgate').describe('Task queue the worker polls and clients start workflows on.'),
  DYNAMODB_ENDPOINT: z
    .url()
    .optional()
    .describe('DynamoDB endpoint URL. Unset means the AWS default for DYNAMODB_REGION; loopback endpoints use dummy credentials.'),
  DYNAMODB_REGION: z.string().min(1).default('local').describe('AWS region of the DynamoDB tables.'),
  DYNAMODB_TABLE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{0,64}$/, 'letters, digits, _ . - only')
    .default('tollgate_')
    .describe('Prefix of every table name (ledger, config, jobs).'),
  METER_ENABLED: z
    .enum(['true', 'false'])
    .default('true')
    .describe('Whether the worker ensures a meter/<first>-<last> pump workflow runs for every group of shards at start (true/false).'),
  METER_SHARDS_PER_PUMP: positiveInt
    .max(1_024)
    .default(16)
    .describe(
      'Consecutive shards one pump workflow owns (aligned blocks: 0-15, 16-31, …). Fewer, larger pumps replay faster after a cold start (one workflow task per pump per span, whatever its shard count). Every worker of a deployment must use the same value: a start retires the pumps of any other grouping.',
    ),
  METER_BATCH_SIZE: positiveInt.max(10_000).default(500).describe('Most usage entries one pump batch reads from a shard stream.'),
  METER_CLAIM_MIN_IDLE_MS: positiveInt
    .optional()
    .describe(
      'A usage entry delivered but unacknowledged this long (ms) is reclaimed by the pump (a crashed batch). Default: METER_HEARTBEAT_TIMEOUT_MS, the moment the crashed batch is retried.',
    ),
  METER_IDLE_DELAY_MS: positiveInt
    .default(1_000)
    .describe(
      'Longest pause (ms) between two polls of an idle stream inside a pump activity (polls back off from 50 ms to it): the worst-case ledger lag at idle.',
    ),
  METER_IDLE_WAIT_MS: positiveInt
    .default(30_000)
    .describe(
      'How long (ms) one pump activity pumps batch after batch, and waits on an idle stream, before it returns (at most half of METER_ACTIVITY_TIMEOUT_MS; each activity draws its span between half and all of it, so pumps started together drift apart): a pump adds one activity (~6 history events) per span, busy or idle.',
    ),
  METER_ITERATIONS_PER_RUN: positiveInt.default(200).describe('Batches a pump workflow runs before it continues as new.'),
  METER_MAX_RUN_EVENTS: positiveInt
    .min(50)
    .default(400)
    .describe(
      'History events after which a pump run continues as new: bounds what a cold worker replays per pump (a run ends within ~10 events of it).',
    ),
  METER_MAX_RUN_BYTES: positiveInt.min(16_384).default(262_144).describe('History bytes after which a pump run continues as new.'),
  METER_ACTIVITY_TIMEOUT_MS: positiveInt.default(60_000).describe('Start-to-close timeout of one pump batch, ms.'),
  METER_HEARTBEAT_TIMEOUT_MS: positiveInt
    .default(10_000)
    .describe('Heartbeat timeout of one pump batch, ms: how soon a batch of a crashed worker is retried.'),
  METER_BATCHES_IN_FLIGHT: positiveInt
    .max(4_096)
    .default(16)
    .describe(
      'Pump batches one worker process reads and ledgers at once (the other pumps wait their turn, heartbeating): keeps a cold start of every pump with a backlog from starving the worker of event-loop time.',
    ),
  METER_MAX_TRANSACT_ITEMS: positiveInt
    .min(2)
    .max(100)
    .default(100)
    .describe('Operations per DynamoDB TransactWriteItems when the pump posts ledger entries (DynamoDB allows 100).'),
  METER_TRANSACTIONS_IN_FLIGHT: positiveInt
    .max(64)
    .default(1)
    .describe(
      'Ledger transactions one pump batch sends at once (never two moving the same balance). 1 is fastest on DynamoDB Local (measured); raise it for DynamoDB, where a transaction waits on the network.',
    ),
  // the metering audit: `audit/all` workflow
  AUDIT_ENABLED: z
    .enum(['true', 'false'])
    .default('true')
    .describe('Whether the worker ensures the audit/all workflow runs (admitted counters vs the ledger, every AUDIT_INTERVAL_MS).'),
  AUDIT_INTERVAL_MS: positiveInt
    .default(300_000)
    .describe('Wait between two audit cycles, ms (a cycle walks every admitted counter once).'),
  AUDIT_SCAN_COUNT: positiveInt
    .max(100_000)
    .default(1_000)
    .describe('SCAN COUNT of one audit page (keys Redis examines per page; one page is one activity).'),
  AUDIT_PAGES_PER_RUN: positiveInt.default(200).describe('Audit pages a workflow run handles before it continues as new.'),
  AUDIT_ACTIVITY_TIMEOUT_MS: positiveInt.default(120_000).describe('Start-to-close timeout of one audit page, ms.'),
  WORKER_METRICS_PORT: z.coerce
    .number()
    .int()
    .min(0)
    .max(65_535)
    .default(0)
    .describe("TCP port of the worker's Prometheus /metrics (pump counters); 0: not served."),
  WORKER_MAX_CACHED_WORKFLOWS: positiveInt
    .optional()
    .describe(
      'Workflows the worker keeps in its cache (a cached one needs no replay). Unset: the pump count (DECIDER_SHARDS / METER_SHARDS_PER_PUMP, rounded up) + 128 (every pump, the audit, the sweep, accounts).',
    ),
  WORKER_WORKFLOW_TASK_SLOTS: positiveInt
    .min(2)
    .max(1_000)
    .default(40)
    .describe(
      'Workflow tasks the worker runs at once (10 pollers at most). With bounded pump runs a cold replay takes milliseconds, so 40 finish well inside the 10 s task timeout; fewer starve a busy fleet of workflow task throughput (measured).',
    ),
  WORKER_STALL_AFTER_MS: positiveInt
    .default(120_000)
    .describe(
      "The worker's tollgate_meter_fleet_stalled is 1 when usage entries waited this long (ms) and no pump batch of the worker handled one for as long.",
    ),
  WORKER_STICKY_TIMEOUT_MS: positiveInt
    .min(1_000)
    .default(10_000)
    .describe(
      "How long (ms) a workflow task waits on the worker's sticky queue before any worker may take it (replaying the history): after a worker dies, how long its pumps wait.",
    ),
  WORKER_ACTIVITY_SLOTS: positiveInt
    .optional()
    .describe(
      'Activities the worker runs at once. Unset: the pump count (DECIDER_SHARDS / METER_SHARDS_PER_PUMP, rounded up) + 64 (each pump holds one for its span, plus audit, sweep, job and account activities).',
    ),
  // deferred (202) jobs: `job/<tenant>/<jobId>` workflows
  JOBS_TASK_QUEUE: z
    .string()
    .min(1)
    .default('tollgate-jobs')
    .describe('Task queue of deferred-job workflows; the API process polls it (jobs run in-process against its schema).'),
  JOBS_TTL_MS: positiveInt
    .max(400 * 86_400_000)
    .default(86_400_000)
    .describe('How long a deferred job may wait for its limit, in ms from submission; past it the job ends expired, uncharged.'),
  JOBS_RETRY_MIN_MS: positiveInt
    .default(1_000)
    .describe(
      'Shortest wait (ms) between two admission attempts of a deferred job; also the first backoff step when the limiter gives no retry time.',
    ),
  JOBS_RETRY_MAX_MS: positiveInt
    .default(300_000)
    .describe('Longest wait (ms) between two admission attempts of a deferred job (a quota reset also wakes jobs early).'),
  JOBS_MAX_QUEUED_PER_TENANT: positiveInt
    .max(1_000_000)
    .default(100)
    .describe('Most unfinished deferred jobs one tenant may have; another deferral is answered 429.'),
  // the sweep of unfinished deferred jobs: `jobs-sweep/all` workflow
  JOBS_SWEEP_ENABLED: z
    .enum(['true', 'false'])
    .default('true')
    .describe(
      'Whether the worker ensures the jobs-sweep/all workflow runs: it restarts deferred jobs whose workflow is gone and ends those past their TTL that cannot be restarted (true/false).',
    ),
  JOBS_SWEEP_INTERVAL_MS: positiveInt
    .default(60_000)
    .describe('Wait between two jobs sweep cycles, ms (a cycle walks every unfinished job of every tenant once).'),
  JOBS_SWEEP_GRACE_MS: positiveInt
    .default(60_000)
    .describe('Age below which the sweep leaves an unfinished job alone, ms (its submit may still be starting its workflow).'),
  JOBS_SWEEP_PAGE_SIZE: positiveInt.max(1_000).default(100).describe('Jobs one sweep page looks at (one page is one activity).'),
  JOBS_SWEEP_PAGES_PER_RUN: positiveInt.default(200).describe('Sweep pages a workflow run handles before it continues as new.'),
  JOBS_SWEEP_ACTIVITY_TIMEOUT_MS: positiveInt.default(120_000).describe('Start-to-close timeout of one sweep page, ms.'),
  // account workflows (`account/<tenant>`): warnings, period close, late events
  ACCOUNT_ENABLED: z
    .enum(['true', 'false'])
    .default('true')
    .describe(
      'Whether the worker ensures an account/<tenant> workflow runs for every stored account at start, and the pump signals warnings to them (true/false).',
    ),
  ACCOUNT_LATE_GRACE_MS: positiveInt
    .default(3_600_000)
    .describe(
      'Grace window after a period ends, ms: usage events of the closed period arriving within it still count in it (the statement is re-rated at its end); later ones are credited to the next open period.',
    ),
  ACCOUNT_ACTIVITY_TIMEOUT_MS: positiveInt
    .default(60_000)
    .describe('Start-to-close timeout of the account activities (load, close, finalize, wake jobs), ms.'),
  ACCOUNT_WEBHOOK_TIMEOUT_MS: positiveInt
    .max(300_000)
    .default(10_000)
    .describe('Timeout of one warning webhook POST, ms; a timeout counts as a failed attempt.'),
  ACCOUNT_WEBHOOK_RETRY_INITIAL_MS: positiveInt
    .default(1_000)
    .describe('First backoff after a failed warning webhook (non-2xx, timeout), ms; it doubles per attempt.'),
  ACCOUNT_WEBHOOK_RETRY_MAX_MS: positiveInt.default(300_000).describe('Longest backoff between two warning webhook attempts, ms.'),
  ACCOUNT_WEBHOOK_MAX_ATTEMPTS: positiveInt
    .max(1_000)
    .default(50)
    .describe('Attempts of one warning webhook before it is given up (its record says failed, with the reason; it is never sent again).'),
  ACCOUNT_WAKE_MAX_JOBS: positiveInt
    .default(1_000)
    .describe(
      'Most queued deferred jobs one period close wakes, oldest first; the rest wait for their own retry timer (at most JOBS_RETRY_MAX_MS).',
    ),
  ACCOUNT_NO_ACCOUNT_RECHECK_MS: positiveInt
    .default(3_600_000)
    .describe('How often an account workflow of a tenant without stored settings looks for them again, ms.'),
});
