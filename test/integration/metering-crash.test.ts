/**
 * Exactly once under crashes: a pump worker in its own process is SIGKILLed
 * at seeded random moments and at named points (after the DynamoDB write,
 * before XACK; after reading; after dead-lettering; after XACK; during a
 * continue-as-new and inside a signal handler, before that workflow task's
 * completion reached the server: test/support/crash-interceptors.ts), restarted
 * each time; at the end every tenant's balance per period is exactly the sum
 * of its events, no event is ledgered twice, and nothing is left pending.
 *
 * Replay a failing run with TOLLGATE_CRASH_SEED=<the printed seed>.
 */
import { join } from 'node:path';
import { randomInt } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usageStreamKey } from '../../src/decider/index.js';
import { createDynamoClient, deadLetterStreamKey, ledgerTableName, parseShard } from '../../src/metering/index.js';
import { ensureMeterWorkflows, meterPumpId } from '../../src/workflows/index.js';
import { meterSettingsSignal } from '../../src/workflows/workflows/index.js';
import { pumpStateOf } from '../support/pumps.js';
import { closeAll } from '../support/teardown.js';
import { allocateShards } from '../support/allocate.js';
import { readLedgerPartition } from '../support/ledger.js';
import { testConfig, testStack, uniqueTenant } from '../support/stack.js';
import { killWorkerProcesses, startWorkerProcess, writeWorkflowBundle, type WorkerLife } from '../support/worker-process.js';
import { appendEvents, expectedBalances, generateEvents, reservedEvent, seededRandom, type TestEvent } from '../support/usage-events.js';
import { waitFor } from '../support/poll.js';
import { sleep } from '../support/time.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const config = testConfig();
const stack = testStack();
const seed = Number(process.env['TOLLGATE_CRASH_SEED'] ?? randomInt(1, 2 ** 31));
const random = seededRandom(seed);
const taskQueue = `meter-crash-${seed}`;
// Shards of this file's own, from the test allocator.
const range = allocateShards(3);
const shards = [0, 1, 2].map((index) => parseShard(range.at(index)));
const RANDOM_KILLS = 20;
const SIGNAL_POINT = `signal:${meterSettingsSignal.name}`;
// Ordered so that each point still has work to stop in: the poison event sits a quarter into each shard's
// ~1,050 events (its third batch of 100), and the points from continue-as-new on need only the workflow running.
const NAMED_KILLS = [
  'ledger-written',
  'dead-lettered',
  'acked',
  'read',
  'ledger-written',
  'continue-as-new',
  SIGNAL_POINT,
  'ledger-written',
] as const;
// idle waits short (300 ms): an idle pump still reaches its continue-as-new (15 batches) within one life
const SETTINGS = { idleDelayMs: 200, idleWaitMs: 300, iterationsPerRun: 15, activityTimeoutMs: 30_000, heartbeatTimeoutMs: 2_000 };

const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
let redis: Redis;
let temporal: Connection;
let client: Client;
let bundlePath: string;

function startWorker(crashAt?: string): WorkerLife {
  return startWorkerProcess({
    METER_ENABLED: 'false',
    METER_BATCH_SIZE: '100',
    METER_CLAIM_MIN_IDLE_MS: '1000',
    METER_MAX_TRANSACT_ITEMS: '40',
    TOLLGATE_TEST_TASK_QUEUE: taskQueue,
    TOLLGATE_TEST_WORKFLOW_BUNDLE: bundlePath,
    ...(crashAt === undefined ? {} : { TOLLGATE_TEST_CRASH_AT: crashAt }),
  });
}

async function isDrained(): Promise<boolean> {
  for (const shard of shards) {
    const stream = usageStreamKey(shard);
    const [pending] = (await redis.xpending(stream, 'meter')) as [number];
    const groups = (await redis.xinfo('GROUPS', stream)) as unknown[][];
    const group = groups[0] ?? [];
    const lastDelivered = group[group.indexOf('last-delivered-id') + 1];
    const info = (await redis.xinfo('STREAM', stream)) as unknown[];
    const lastGenerated = info[info.indexOf('last-generated-id') + 1];
    if (pending !== 0 || lastDelivered !== lastGenerated) return false;
  }
  return true;
}

beforeAll(async () => {
  console.log(`[metering-crash] seed ${seed} (replay with TOLLGATE_CRASH_SEED=${seed}), shards ${shards.join(', ')}`);
  redis = new Redis(config.redis.url);
  temporal = await Connection.connect({ address: config.temporal.address });
  client = new Client({ connection: temporal, namespace: config.temporal.namespace });
  bundlePath = await writeWorkflowBundle(join(stack.dataDir, 'metering-crash'), {
    interceptorModules: [join(REPO, 'test/support/crash-interceptors.ts')],
  });
});

afterAll(async () => {
  killWorkerProcesses();
  for (const shard of shards) {
    await client.workflow
      .getHandle(meterPumpId(shard))
      .terminate('test over')
      .catch(() => undefined);
  }
  await closeAll(temporal, redis, dynamo);
});

describe('meter/<shard> pump under SIGKILL', () => {
  it('ledgers every event exactly once across 28 crashes and restarts (during a continue-as-new and inside a signal handler among them), dead-letters each poison event once, leaves nothing pending', async () => {
    // given a few thousand events of several tenants and periods on three shard streams, one poison event on each
    const tenants = [uniqueTenant(), uniqueTenant(), uniqueTenant(), uniqueTenant()];
    const periods = [Date.UTC(2026, 9, 1), Date.UTC(2026, 10, 1)];
    const all: TestEvent[] = [];
    for (const shard of shards) {
      const events = generateEvents({ tenants, periods, requests: 600, random, prefix: `s${shard}` });
      const poisoned: { fields: string[] }[] = [...events];
      const bad = reservedEvent({ requestId: `s${shard}-poison`, tenant: tenants[0] ?? '', bp: periods[0] ?? 0, cost: 1 });
      poisoned.splice(Math.floor(events.length / 4), 0, {
        fields: bad.fields.map((value) => (value === 'usage.reserved.v1' ? 'usage.unknown.v1' : value)),
      });
      await appendEvents(redis, usageStreamKey(shard), poisoned);
      all.push(...events);
    }
    const ensurePumps = (settings = SETTINGS) =>
      ensureMeterWorkflows(client, { shards, taskQueue, settings, workflowTaskTimeoutMs: 2_000 });
    await ensurePumps();

    // when the worker is killed at named points, then at seeded random moments, and restarted each time
    const reached: string[] = [];
    for (const stage of NAMED_KILLS) {
      const life = startWorker(stage);
      await life.ready;
      // a settings signal reaches the running pumps while this life works (the handler runs in it); an ensure signals
      // only pumps whose settings differ, so this one changes them
      if (stage === SIGNAL_POINT) await ensurePumps({ ...SETTINGS, idleDelayMs: SETTINGS.idleDelayMs + 50 });
      const code = await Promise.race([life.exited, sleep(20_000).then(() => 'timeout' as const)]);
      if (code === 'timeout') {
        life.child.kill('SIGKILL');
        await life.exited;
      }
      const crashedAt = life.crashed();
      if (crashedAt !== undefined) reached.push(crashedAt);
    }
    for (let kill = 0; kill < RANDOM_KILLS; kill += 1) {
      const life = startWorker();
      await life.ready;
      await sleep(100 + Math.floor(random() * 1_400));
      life.child.kill('SIGKILL');
      await life.exited;
    }
    const last = startWorker();
    await last.ready;
    while (!(await isDrained())) await sleep(250);

    // then
    for (const point of ['ledger-written', 'dead-lettered', 'acked', 'read', 'continue-as-new', SIGNAL_POINT])
      expect(reached).toContain(point);
    for (const [key, expected] of expectedBalances(all)) {
      const [tenant = '', periodStart = ''] = key.split('|');
      const partition = await readLedgerPartition(dynamo, { table: ledgerTableName(config.dynamodb.tablePrefix), tenant, periodStart });
      const ids = all.filter((event) => `${event.tenant}|${new Date(event.bp).toISOString()}` === key).map((event) => event.eventId);
      expect(partition.balance, key).toEqual(expected);
      expect(partition.entrySum, key).toBe(expected.amount);
      expect(partition.entryIds, key).toEqual(ids.sort());
    }
    for (const shard of shards) {
      const [pending] = (await redis.xpending(usageStreamKey(shard), 'meter')) as [number];
      expect(pending).toBe(0);
      const dead = await redis.xrange(deadLetterStreamKey(shard), '-', '+');
      expect(dead.map(([, fields]) => fields[fields.indexOf('reason') + 1])).toEqual(['unknown type "usage.unknown.v1"']);
    }
    // the crashes after the DynamoDB write really made later batches re-post entries (as duplicates)
    // (a query fails while the pump's workflow task is failed, e.g. timed out in a killed life, until the live
    // worker has run it again: each query is retried until it answers)
    let duplicates = 0;
    for (const shard of shards) {
      const state = await waitFor(`meter/${shard} answering its state query`, () => pumpStateOf(client, shard).catch(() => undefined));
      duplicates += state.counters.duplicates;
    }
    expect(duplicates).toBeGreaterThan(0);
    console.log(`[metering-crash] named crash points reached: ${reached.join(', ')}; entries re-posted as duplicates: ${duplicates}`);
    last.child.kill('SIGTERM');
    expect(await last.exited).toBe(0);
  }, 300_000);
});
