/**
 * A cold start of the worker with 1,024 pumps (issue 19): DECIDER_SHARDS=1024
 * on a Temporal dev server of this file's own and a Redis database of its own.
 * Each pump first gets a history of its own under traffic (rounds of one event
 * per shard, each round drained: one batch, ~6 history events, per pump and
 * round), written by a worker that keeps no workflow cache (so no task is left
 * on a sticky queue when it stops). Then the worker stops, a backlog builds up
 * on every shard, and the real worker entry point (src/workflows/worker.ts)
 * starts cold, sized by the shard count alone (cache DECIDER_SHARDS + 128,
 * activity slots DECIDER_SHARDS + 64): it replays all 1,024 pumps at once.
 * It drains the backlog and the next round (steady pumping) without a single
 * workflow task timing out in any pump's history, and reports /ready.
 *
 * Opt-in (TOLLGATE_TEST_FLEET_1024=1): it has not yet passed on the 2-core CI
 * machine (its one run, beside two other fleet runs, timed out building the
 * histories); see the issue 19 report.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startTemporal, stopProcess, type ManagedProcess } from '../../infra/services.js';
import { usageStreamKey } from '../../src/decider/index.js';
import { createDynamoClient, ledgerTableName, parseShard, readStreamLag } from '../../src/metering/index.js';
import { closeAll } from '../support/teardown.js';
import { waitFor } from '../support/poll.js';
import { allocateRedisDb } from '../support/allocate.js';
import { readLedgerPartition } from '../support/ledger.js';
import { stackEnv, testStack, uniqueTenant } from '../support/stack.js';
import { killWorkerProcesses, startWorkerProcess, writeWorkflowBundle } from '../support/worker-process.js';
import { describeTimeouts, gauge, pumpRunsSince, scrape, startEntryPoint, timeoutsSince } from '../support/fleet.js';
import { expectedBalances, generateEvents, seededRandom, type TestEvent } from '../support/usage-events.js';

const SHARDS = 1_024;
const ALL_SHARDS = Array.from({ length: SHARDS }, (_, shard) => shard);
/** Rounds of one event per shard before the cold start: each adds one batch (~6 events) to every pump's history. */
const HISTORY_ROUNDS = 8;
const BACKLOG_PER_SHARD = 5;
const stack = testStack();
const { url: redisUrl } = allocateRedisDb();
const taskQueue = `fleet-cold-${randomBytes(4).toString('hex')}`;
const random = seededRandom(1_024);
const tenants = Array.from({ length: 32 }, () => uniqueTenant('cold'));
const periods = [Date.UTC(2026, 10, 1)];
const dynamo = createDynamoClient({ endpoint: stack.dynamodbEndpoint, region: stack.dynamodbRegion });
const appended: TestEvent[] = [];
let temporal: ManagedProcess;
let temporalAddress: string;
let connection: Connection;
let client: Client;
let redis: Redis;

function workerEnv(): Record<string, string> {
  return {
    ...stackEnv(),
    REDIS_URL: redisUrl,
    TEMPORAL_ADDRESS: temporalAddress,
    TEMPORAL_NAMESPACE: 'default',
    DECIDER_SHARDS: String(SHARDS),
    METER_BATCH_SIZE: '50',
    METER_CLAIM_MIN_IDLE_MS: '5000',
    METER_HEARTBEAT_TIMEOUT_MS: '5000',
    METER_IDLE_DELAY_MS: '1000',
    METER_IDLE_WAIT_MS: '20000',
    METER_MAX_TRANSACT_ITEMS: '50',
  };
}

/** Appends `perShard` seeded events to every shard (pipelined); remembers them. */
async function appendToEveryShard(perShard: number, label: string): Promise<void> {
  const pipeline = redis.pipeline();
  for (const shard of ALL_SHARDS) {
    const events = generateEvents({ tenants, periods, requests: perShard, random, prefix: `${label}-${shard}` });
    for (const event of events) pipeline.xadd(usageStreamKey(parseShard(shard)), '*', ...event.fields);
    appended.push(...events);
  }
  const replies = await pipeline.exec();
  const failed = replies?.find(([error]) => error !== null);
  if (failed?.[0]) throw failed[0];
}

async function unacknowledged(): Promise<number> {
  return (await readStreamLag(redis, { shards: ALL_SHARDS, concurrency: 64 })).unacknowledged;
}

beforeAll(async () => {
  const port = await freePort();
  temporal = await startTemporal({
    dataDir: join(stack.dataDir, `fleet-cold-${randomBytes(4).toString('hex')}`),
    port,
    httpPort: await freePort(),
    persistent: false,
  });
  temporalAddress = `127.0.0.1:${port}`;
  connection = await Connection.connect({ address: temporalAddress });
  client = new Client({ connection, namespace: 'default' });
  redis = new Redis(redisUrl);
}, 180_000);

afterAll(async () => {
  killWorkerProcesses();
  await closeAll(connection, redis, dynamo);
  await stopProcess(temporal);
});

describe.skipIf(process.env['TOLLGATE_TEST_FLEET_1024'] !== '1')('a cold worker start with 1,024 pumps', () => {
  it('replays every pump with a history of its own and reaches steady pumping without a single workflow task timeout', async () => {
    // given 1,024 pumps, each with a history of HISTORY_ROUNDS batches (a worker that keeps no cache wrote them)
    const bundlePath = await writeWorkflowBundle(join(stack.dataDir, 'metering-fleet-cold'));
    const warm = startWorkerProcess({
      ...workerEnv(),
      TOLLGATE_TEST_TASK_QUEUE: taskQueue,
      TOLLGATE_TEST_WORKFLOW_BUNDLE: bundlePath,
      TOLLGATE_TEST_START_PUMPS: '1',
    });
    await warm.ready;
    await waitFor('every pump to run', async () => (await client.workflow.count(`WorkflowType = 'meterShard'`)).count >= SHARDS, {
      timeoutMs: 120_000,
      intervalMs: 1_000,
    });
    for (let round = 0; round < HISTORY_ROUNDS; round += 1) {
      await appendToEveryShard(1, `round${round}`);
      await waitFor(`round ${round} to be pumped`, async () => (await unacknowledged()) === 0, { timeoutMs: 120_000, intervalMs: 500 });
    }
    const before = await pumpRunsSince(client, Date.now());
    const sizes = before.map((run) => run.events).sort((a, b) => a - b);
    console.log(
      `[metering-fleet-cold] ${before.length} open runs before the cold start: history events min ${sizes[0]}, ` +
        `median ${sizes[Math.floor(sizes.length / 2)]}, max ${sizes.at(-1)}`,
    );
    expect(before.length).toBe(SHARDS);

    // when the worker stops, a backlog builds up on every shard, and the worker entry point starts cold
    warm.child.kill('SIGTERM');
    expect(await warm.exited).toBe(0);
    await appendToEveryShard(BACKLOG_PER_SHARD, 'backlog');
    const metricsPort = await freePort();
    const coldStartMs = Date.now();
    const cold = startEntryPoint({ ...workerEnv(), TEMPORAL_TASK_QUEUE: taskQueue, WORKER_METRICS_PORT: String(metricsPort) });

    // then it drains the backlog, and pumps the next round too (steady pumping)
    await waitFor(
      'the backlog to drain',
      async () => {
        expect(cold.child.exitCode, cold.output()).toBeNull();
        return (await unacknowledged()) === 0;
      },
      { timeoutMs: 240_000, intervalMs: 1_000 },
    );
    const drainedMs = Date.now() - coldStartMs;
    await appendToEveryShard(1, 'steady');
    await waitFor('the next round to be pumped', async () => (await unacknowledged()) === 0, { timeoutMs: 120_000, intervalMs: 500 });
    // and not one workflow task of any pump timed out since the cold start
    const runs = await pumpRunsSince(client, coldStartMs);
    const timeouts = timeoutsSince(runs, coldStartMs);
    console.log(
      `[metering-fleet-cold] cold start of ${SHARDS} pumps: backlog of ${SHARDS * BACKLOG_PER_SHARD} drained ${drainedMs} ms after ` +
        `the process started; ${runs.length} runs open since; workflow task timeouts since: ${describeTimeouts(timeouts)}`,
    );
    expect(timeouts).toEqual([]);
    // and it is ready, nothing waiting, no stall
    const health = await scrape(metricsPort);
    expect(health.readyBody).toEqual({ ready: true });
    expect(gauge(health.metrics, 'tollgate_meter_unacknowledged_entries')).toBe(0);
    expect(gauge(health.metrics, 'tollgate_meter_fleet_stalled')).toBe(0);
    // and every event is in the ledger exactly once
    const table = ledgerTableName(stack.tablePrefix);
    for (const [key, expected] of expectedBalances(appended)) {
      const [tenant = '', periodStart = ''] = key.split('|');
      const partition = await readLedgerPartition(dynamo, { table, tenant, periodStart });
      expect(partition.balance, key).toEqual(expected);
    }
    cold.child.kill('SIGTERM');
    expect(await cold.exited).toBe(0);
  }, 900_000);
});
