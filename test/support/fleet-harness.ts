/**
 * A pump fleet at full size for one test file (issue 19): a Temporal dev
 * server of its own (the pumps' ids are meter/0..N-1), a Redis database of its
 * own (N shard streams), the test stack's DynamoDB, the workflow code bundled
 * once, and worker lives that ensure the fleet at every start like the real
 * worker. It appends seeded usage events and checks the ledger against them.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { Redis } from 'ioredis';
import { expect } from 'vitest';
import { freePort, startTemporal, stopProcess, type ManagedProcess } from '../../infra/services.js';
import { connectDeciderRedis, usageStreamKey, type DeciderRedis } from '../../src/decider/index.js';
import { createDynamoClient, ledgerTableName, parseShard, readStreamLag, type StreamLag } from '../../src/metering/index.js';
import { allocateRedisDb } from './allocate.js';
import { readLedgerPartition } from './ledger.js';
import { stackEnv, testStack, uniqueTenant } from './stack.js';
import { closeAll } from './teardown.js';
import { killWorkerProcesses, startWorkerProcess, writeWorkflowBundle, type WorkerLife } from './worker-process.js';
import { appendEvents, expectedBalances, generateEvents, type TestEvent } from './usage-events.js';

export interface FleetHarnessOptions {
  /** Names the bundle's folder and the log lines. */
  name: string;
  shards: number;
  /** Worker settings of every life (METER_*, WORKER_*), on top of the stack's. */
  settings: Record<string, string>;
  /** Draws the shards, tenants and amounts of appended traffic. */
  random: () => number;
}

export interface FleetHarness {
  client: Client;
  /** A plain connection to the fleet's Redis database. */
  redis: Redis;
  /** The same database as the decider connects to it (for traffic through the real decider). */
  deciderRedis: DeciderRedis;
  redisUrl: string;
  dynamo: ReturnType<typeof createDynamoClient>;
  taskQueue: string;
  /** Every setting a worker of this fleet runs with (the real entry point takes these too). */
  workerEnv(): Record<string, string>;
  /** A meter-worker life that ensures the fleet at its start, keeping its workflow cache (and so a sticky queue) as the real worker does. */
  startMeterWorker(): WorkerLife;
  /** Every event appended by `appendTraffic`. */
  appended: TestEvent[];
  /** Appends `perShard` seeded requests' events to each of `shards` seeded shards. */
  appendTraffic(input: { shards: number; perShard: number; label: string }): Promise<void>;
  lag(): Promise<StreamLag>;
  /** Every tenant's ledger holds exactly the appended events (balance, entry sum and entry ids). */
  expectLedgerEqualsAppended(): Promise<void>;
  close(): Promise<void>;
}

export async function startFleetHarness(options: FleetHarnessOptions): Promise<FleetHarness> {
  const stack = testStack();
  const { url: redisUrl } = allocateRedisDb();
  const taskQueue = `${options.name}-${randomBytes(4).toString('hex')}`;
  const tenants = Array.from({ length: 16 }, () => uniqueTenant(options.name.slice(0, 8)));
  const periods = [Date.UTC(2026, 10, 1)];
  const allShards = Array.from({ length: options.shards }, (_, shard) => shard);
  const dynamo = createDynamoClient({ endpoint: stack.dynamodbEndpoint, region: stack.dynamodbRegion });
  const port = await freePort();
  const temporal: ManagedProcess = await startTemporal({
    dataDir: join(stack.dataDir, `${options.name}-${randomBytes(4).toString('hex')}`),
    port,
    httpPort: await freePort(),
    persistent: false,
  });
  const temporalAddress = `127.0.0.1:${port}`;
  const connection = await Connection.connect({ address: temporalAddress });
  const client = new Client({ connection, namespace: 'default' });
  const redis = new Redis(redisUrl);
  const deciderRedis = await connectDeciderRedis({ url: redisUrl, commandTimeoutMs: 5_000 });
  const bundlePath = await writeWorkflowBundle(join(stack.dataDir, options.name));
  const appended: TestEvent[] = [];
  const workerEnv = (): Record<string, string> => ({
    ...stackEnv(),
    REDIS_URL: redisUrl,
    TEMPORAL_ADDRESS: temporalAddress,
    TEMPORAL_NAMESPACE: 'default',
    TEMPORAL_TASK_QUEUE: taskQueue,
    DECIDER_SHARDS: String(options.shards),
    ...options.settings,
  });
  const lag = (): Promise<StreamLag> => readStreamLag(redis, { shards: allShards, concurrency: 32 });
  return {
    client,
    redis,
    deciderRedis,
    redisUrl,
    dynamo,
    taskQueue,
    workerEnv,
    appended,
    lag,
    startMeterWorker: () =>
      startWorkerProcess({
        ...workerEnv(),
        TOLLGATE_TEST_TASK_QUEUE: taskQueue,
        TOLLGATE_TEST_WORKFLOW_BUNDLE: bundlePath,
        TOLLGATE_TEST_START_PUMPS: '1',
        TOLLGATE_TEST_KEEP_CACHE: '1',
      }),
    async appendTraffic(input) {
      for (let index = 0; index < input.shards; index += 1) {
        const shard = Math.floor(options.random() * options.shards);
        const events = generateEvents({
          tenants,
          periods,
          requests: input.perShard,
          random: options.random,
          prefix: `${input.label}-${index}`,
        });
        await appendEvents(redis, usageStreamKey(parseShard(shard)), events);
        appended.push(...events);
      }
    },
    async expectLedgerEqualsAppended() {
      const table = ledgerTableName(stack.tablePrefix);
      for (const [key, expected] of expectedBalances(appended)) {
        const [tenant = '', periodStart = ''] = key.split('|');
        const partition = await readLedgerPartition(dynamo, { table, tenant, periodStart });
        const ids = appended.filter((event) => `${event.tenant}|${new Date(event.bp).toISOString()}` === key).map((event) => event.eventId);
        expect(partition.balance, key).toEqual(expected);
        expect(partition.entrySum, key).toBe(expected.amount);
        expect(partition.entryIds, key).toEqual(ids.sort());
      }
    },
    async close() {
      killWorkerProcesses();
      await closeAll(connection, redis, deciderRedis, dynamo);
      await stopProcess(temporal);
    },
  };
}
