/**
 * The Temporal dev server SIGKILLed and restarted on its database file:
 * - during reconciliation: the `meter/<shard>` pumps resume from their
 *   persisted state and the ledger ends exactly equal to the client's record
 *   of admitted usage (each event once, nothing pending), while the decider
 *   keeps answering throughout;
 * - during a burst of deferrals: the API keeps answering non-deferrable
 *   requests (200), refuses deferrals with a clear 503 `JOBS_UNAVAILABLE`
 *   (bounded by a deadline, never a hang), and once Temporal is back the
 *   clients' retries (same Idempotency-Key) start the jobs recorded during the
 *   outage; every job runs exactly once.
 *
 * A dedicated dev server (free ports, db file in a temp dir): the shared one
 * of the globalSetup is never killed. Workers run in-process and are
 * re-created when they stop. Its shards come from the test allocator.
 * Replay with TOLLGATE_FAULT_SEED=<seed>.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, bundleWorkflowCode, type Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startTemporal, stopProcess, type ManagedProcess } from '../../infra/services.js';
import { RedisDecider, connectDeciderRedis, shardOf, usageStreamKey, type DeciderRedis, type LimitSpec } from '../../src/decider/index.js';
import { InMemoryKeyStore, InMemoryPlanStore, SchemaJobExecutor } from '../../src/graphql/index.js';
import { createApi, type ApiServer } from '../../src/graphql/app.js';
import { DemoStore, createDemoSchema, demoSurface } from '../../src/graphql/demo/index.js';
import { TemporalDeferrer } from '../../src/workflows/index.js';
import { type JobView } from '../../src/jobs/index.js';
import { createDynamoClient, ledgerTableName, parseShard } from '../../src/metering/index.js';
import { createLogger, parseLimitId, parseTenantId, systemClock, type TenantId } from '../../src/shared/index.js';
import { DynamoJobStore, type JobExecutor } from '../../src/jobs/index.js';
import { createJobsWorker, ensureMeterWorkflows, meterPumpId } from '../../src/workflows/index.js';
import { pumpStateOf } from '../support/pumps.js';
import { createTollgateWorker, workflowsPath } from '../../src/workflows/index.js';
import { waitFor } from '../support/poll.js';
import { allocateShards, tenantInShards } from '../support/allocate.js';
import { bodyOf, codeOf, plan, slowBucket } from '../support/graphql.js';
import { readLedgerPartition } from '../support/ledger.js';
import { testConfig, uniqueTenant } from '../support/stack.js';
import { quietTemporalRuntime } from '../support/temporal.js';
import { AdmittedRecord, runTraffic } from '../support/traffic.js';
import { seededRandom } from '../support/usage-events.js';
import { sleep } from '../support/time.js';

const SHARDS = 16_384;
const range = allocateShards(256);
const seed = Number(process.env['TOLLGATE_FAULT_SEED'] ?? randomInt(1, 2 ** 31));
const random = seededRandom(seed);
const scratch = mkdtempSync(join(tmpdir(), 'tollgate-temporal-crash-'));
const config = testConfig();
const logger = createLogger({ level: 'silent', name: 'test' });
const meterQueue = `tc-meter-${randomBytes(4).toString('hex')}`;
const jobsQueue = `tc-jobs-${randomBytes(4).toString('hex')}`;
const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
const jobStore = new DynamoJobStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
let ports: { port: number; httpPort: number };
let temporal: ManagedProcess;
let address: string;
let connection: Connection;
let client: Client;
let redis: DeciderRedis;
let bundlePath: string;
const supervisors: Supervisor[] = [];

const startOwnTemporal = () => startTemporal({ dataDir: scratch, ...ports, persistent: true, timeoutMs: 120_000 });

/** Runs a worker and creates it again whenever it stops (e.g. its server died), until stopped. */
class Supervisor {
  private worker: Worker | undefined;
  private isStopping = false;
  restarts = 0;
  private readonly loop: Promise<void>;

  constructor(create: (connection: NativeConnection) => Promise<{ worker: Worker; close?: () => void }>) {
    this.loop = (async () => {
      while (!this.isStopping) {
        let native: NativeConnection | undefined;
        let close: (() => void) | undefined;
        try {
          native = await NativeConnection.connect({ address });
          const created = await create(native);
          this.worker = created.worker;
          close = created.close;
          if (this.isStopping) this.worker.shutdown();
          await this.worker.run();
        } catch {
          // the server went away (or was not up yet): create the worker again
        } finally {
          this.worker = undefined;
          close?.();
          await native?.close().catch(() => undefined);
        }
        if (!this.isStopping) {
          this.restarts += 1;
          await sleep(300);
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.isStopping = true;
    if (this.worker?.getState() === 'RUNNING') this.worker.shutdown();
    await this.loop;
  }
}

beforeAll(async () => {
  console.log(`[temporal-crash] seed ${seed} (replay with TOLLGATE_FAULT_SEED=${seed})`);
  quietTemporalRuntime();
  ports = { port: await freePort(), httpPort: await freePort() };
  address = `127.0.0.1:${ports.port}`;
  temporal = await startOwnTemporal();
  connection = await Connection.connect({ address });
  client = new Client({ connection, namespace: 'default' });
  redis = await connectDeciderRedis({ url: config.redis.url, commandTimeoutMs: 5_000 });
  const bundle = await bundleWorkflowCode({
    workflowsPath: workflowsPath(),
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} },
  });
  bundlePath = join(scratch, 'workflows.js');
  writeFileSync(bundlePath, bundle.code);
}, 180_000);

afterAll(async () => {
  await Promise.all(supervisors.map((supervisor) => supervisor.stop()));
  await connection.close();
  redis.disconnect();
  dynamo.destroy();
  await stopProcess(temporal);
  rmSync(scratch, { recursive: true, force: true });
}, 60_000);

const tenantInRange = (): TenantId => tenantInShards(range, 'tc');

async function isDrained(shards: readonly number[]): Promise<boolean> {
  for (const shard of shards) {
    const stream = usageStreamKey(parseShard(shard));
    const groups = (await redis.xinfo('GROUPS', stream)) as unknown[][];
    if (groups.length === 0) return false; // its pump has not run yet
    const [pending] = (await redis.xpending(stream, 'meter')) as [number];
    const group = groups[0] ?? [];
    const info = (await redis.xinfo('STREAM', stream)) as unknown[];
    if (pending !== 0 || group[group.indexOf('last-delivered-id') + 1] !== info[info.indexOf('last-generated-id') + 1]) return false;
  }
  return true;
}

describe('the Temporal server killed during reconciliation', () => {
  it(`the pumps resume from the database file and ledger every admitted unit exactly once (seed ${seed})`, async () => {
    // given the pumps of three tenants' shards running on the dedicated server
    const tenants = [tenantInRange(), tenantInRange(), tenantInRange()];
    const shards = [...new Set(tenants.map((tenant) => shardOf(tenant, SHARDS)))];
    const pumpWorker = new Supervisor((native) =>
      createTollgateWorker({
        config,
        connection: native,
        logger,
        taskQueue: meterQueue,
        workflowBundle: { codePath: bundlePath },
        workerOptions: { maxCachedWorkflows: 0 },
      }),
    );
    supervisors.push(pumpWorker);
    await ensureMeterWorkflows(client, {
      shards,
      taskQueue: meterQueue,
      settings: { idleDelayMs: 100, iterationsPerRun: 25, activityTimeoutMs: 20_000, heartbeatTimeoutMs: 3_000 },
      workflowTaskTimeoutMs: 2_000,
    });
    const decider = new RedisDecider(redis, { shardCount: SHARDS, clock: systemClock });
    const record = new AdmittedRecord();
    const killAt = 60 + Math.floor(random() * 60);
    const restartAt = killAt + 60 + Math.floor(random() * 40);
    let restarted: Promise<void> | undefined;

    // when the server is SIGKILLed while requests are decided and pumped, and restarted later on its db file
    await runTraffic({
      decider,
      tenants,
      requests: 260,
      random,
      record,
      between: (index) => {
        if (index === killAt) process.kill(temporal.pid, 'SIGKILL');
        if (index === restartAt) {
          restarted = startOwnTemporal().then((proc) => {
            temporal = proc;
          });
        }
        return Promise.resolve();
      },
    });
    await restarted;
    await waitFor('the pumps to drain the streams after the restart', () => isDrained(shards), { timeoutMs: 120_000, intervalMs: 250 });

    // then the decider answered every request (the hot path never needed Temporal)
    expect(record.admitted).toBe(260);
    // and the ledger is exactly the client's record, each event once
    const table = ledgerTableName(config.dynamodb.tablePrefix);
    for (const [key, expected] of record.byPeriod) {
      const [tenant = '', periodStart = ''] = key.split('|');
      const partition = await readLedgerPartition(dynamo, { table, tenant, periodStart });
      expect(partition.balance, key).toEqual({ amount: expected.amount, entries: expected.eventIds.length });
      expect(partition.entryIds, key).toEqual([...expected.eventIds].sort());
    }
    // and the pumps are the same workflows, still running, their state kept across the restart
    for (const shard of shards) {
      const handle = client.workflow.getHandle(meterPumpId(shard));
      expect((await handle.describe()).status.name).toBe('RUNNING');
      // (its counters move when an activity's span ends, after the drain)
      await waitFor(`meter/${shard}'s counters to show its reads`, async () => (await pumpStateOf(client, shard)).counters.read > 0, {
        timeoutMs: 60_000,
        intervalMs: 250,
      });
    }
    console.log(
      `[temporal-crash] killed before request ${killAt}, restarted before ${restartAt}; pump worker re-created ${pumpWorker.restarts} times`,
    );
  }, 300_000);
});

describe('the Temporal server killed during a burst of deferrals', () => {
  const EXPORT = 'mutation Export { exportOrdersReport { id rowCount } }';
  const store = new DemoStore();
  const plans = new InMemoryPlanStore();
  const keyStore = new InMemoryKeyStore();
  const heavy = (refillPeriodMs: number): LimitSpec => ({
    id: parseLimitId('heavy'),
    scope: 'tenant',
    algorithm: { kind: 'token-bucket', capacity: 600, refillAmount: 600, refillPeriodMs },
    mode: 'defer',
    onDeciderDown: 'open',
  });

  async function post(yoga: ApiServer, key: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
    return yoga.fetch('http://tollgate.test/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers },
      body: JSON.stringify(body),
    });
  }

  async function waitForJob(yoga: ApiServer, key: string, id: string): Promise<JobView> {
    return waitFor(
      `job ${id} to finish`,
      async () => {
        const response = await yoga.fetch(`http://tollgate.test/jobs/${id}`, { headers: { authorization: `Bearer ${key}` } });
        if (response.status !== 200) return undefined;
        const job = ((await response.json()) as { job: JobView }).job;
        return (job.status === 'succeeded' || job.status === 'failed' || job.status === 'expired') && job;
      },
      { timeoutMs: 120_000, intervalMs: 150 },
    );
  }

  it('keeps answering, refuses deferrals with 503 JOBS_UNAVAILABLE while it is down, and runs every job exactly once after', async () => {
    // given the API with a TemporalDeferrer on the dedicated server, and its jobs worker
    const decider = new RedisDecider(redis, { shardCount: 16, clock: systemClock });
    const executions: string[] = [];
    const schemaExecutor = new SchemaJobExecutor({
      schema: createDemoSchema({ store, version: 'test', deciderTimeMs: () => Promise.resolve(0), clock: systemClock, jobs: jobStore }),
      plans,
    });
    const counting: JobExecutor = {
      policyOf: (input) => schemaExecutor.policyOf(input),
      execute: (input) => {
        executions.push(input.tenant);
        return schemaExecutor.execute(input);
      },
    };
    const jobsWorker = new Supervisor(async (native) => ({
      worker: await createJobsWorker({
        connection: native,
        namespace: 'default',
        taskQueue: jobsQueue,
        deps: { decider, store: jobStore, executor: counting },
        workflowBundle: { codePath: bundlePath },
      }),
    }));
    supervisors.push(jobsWorker);
    const yoga = createApi({
      redis,
      dynamo,
      tablePrefix: config.dynamodb.tablePrefix,
      temporal: connection,
      logger,
      version: 'test',
      decider,
      keyStore,
      plans,
      surface: demoSurface({ store, version: 'test', redis, jobs: jobStore }),
      deferrer: new TemporalDeferrer({
        client,
        store: jobStore,
        settings: { taskQueue: jobsQueue, ttlMs: 300_000, retryMinMs: 100, retryMaxMs: 500, maxQueuedPerTenant: 50 },
        temporalTimeoutMs: 2_000,
      }),
      jobs: jobStore,
      tollgate: { random: () => 0.5 },
    });
    const tenant = uniqueTenant('tcj');
    const planId = `p-${tenant}`;
    // the defer limit refills 600 units per hour: nothing runs until the plan is changed below
    plans.set(plan(planId, [slowBucket(100_000), heavy(3_600_000)]));
    const key = keyStore.add({ tenant, keyId: 'k1', planId }).key;
    expect((await post(yoga, key, { query: EXPORT })).status).toBe(200);
    const runsBefore = store.resolverCalls;
    // and two exports deferred while Temporal is up
    const jobIds: string[] = [];
    for (const idempotencyKey of ['before-1', 'before-2']) {
      const response = await post(yoga, key, { query: EXPORT }, { 'Idempotency-Key': idempotencyKey });
      expect(response.status).toBe(202);
      jobIds.push((await bodyOf(response)).extensions?.job?.id ?? '');
    }

    // when the server is SIGKILLed
    process.kill(temporal.pid, 'SIGKILL');
    // then reads and non-deferrable operations are answered as usual
    for (let index = 0; index < 3; index += 1) {
      const response = await post(yoga, key, { query: '{ products(first: 2) { nodes { id } } }' });
      expect(response.status).toBe(200);
    }
    // and a burst of new deferrals, and a retry of an accepted one, get a clear 503 with a code and a Retry-After
    const during = ['during-1', 'during-2', 'during-3', 'during-4'];
    const refused = await Promise.all(
      [...during, 'before-1'].map((idempotencyKey) => post(yoga, key, { query: EXPORT }, { 'Idempotency-Key': idempotencyKey })),
    );
    for (const response of refused) {
      expect(response.status).toBe(503);
      expect(response.headers.get('Retry-After')).toMatch(/^\d+$/);
      expect(codeOf(await bodyOf(response))).toBe('JOBS_UNAVAILABLE');
    }

    // when the server is back on its database file and the clients retry with the same keys
    temporal = await startOwnTemporal();
    for (const idempotencyKey of during) {
      let response = await post(yoga, key, { query: EXPORT }, { 'Idempotency-Key': idempotencyKey });
      for (let deadline = Date.now() + 30_000; response.status === 503 && Date.now() < deadline;) {
        await sleep(250);
        response = await post(yoga, key, { query: EXPORT }, { 'Idempotency-Key': idempotencyKey });
      }
      expect(response.status).toBe(202);
      jobIds.push((await bodyOf(response)).extensions?.job?.id ?? '');
    }
    // and the limit refills (600 units per second, one export at a time)
    plans.set(plan(planId, [slowBucket(100_000), heavy(1_000)]));

    // then every job, accepted before or during the outage, succeeds, and each ran exactly once
    expect(new Set(jobIds).size).toBe(6);
    for (const id of jobIds) expect(await waitForJob(yoga, key, id)).toMatchObject({ status: 'succeeded' });
    expect(executions).toHaveLength(6);
    // the export resolver ran once per job; the three reads above ran theirs once each
    expect(store.resolverCalls - runsBefore).toBe(6 + 3);
    expect(await jobStore.openJobs(parseTenantId(tenant))).toBe(0);
    console.log(`[temporal-crash] jobs worker re-created ${jobsWorker.restarts} times`);
  }, 300_000);
});
