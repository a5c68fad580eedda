/**
 * A pump workflow (`meter/<first>-<last>`, two shards) on the Temporal dev
 * server with an in-process worker: it drains both shard streams into the
 * ledger, continues as new, keeps each shard's counters across runs, and a
 * second start joins the running pump.
 *
 * TOLLGATE_CAPTURE_HISTORIES=1 also writes the histories of completed runs to
 * test/fixtures/histories/ (replayed by metering-replay.test.ts on every run).
 */
import { randomInt } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usageStreamKey } from '../../src/decider/index.js';
import { createDynamoClient, ledgerTableName, parseShard } from '../../src/metering/index.js';
import { ensureMeterWorkflows, meterPumpId } from '../../src/workflows/index.js';
import { meterSettingsQuery, type MeterState } from '../../src/workflows/workflows/index.js';
import { pumpStateOf } from '../support/pumps.js';
import { closeAll } from '../support/teardown.js';
import { allocateShards } from '../support/allocate.js';
import { readLedgerPartition } from '../support/ledger.js';
import { testConfig, uniqueTenant } from '../support/stack.js';
import { runInProcessWorker } from '../support/worker-process.js';
import { quietTemporalRuntime } from '../support/temporal.js';
import { appendEvents, expectedBalances, generateEvents, seededRandom, type TestEvent } from '../support/usage-events.js';
import { sleep } from '../support/time.js';

const config = testConfig({ METER_BATCH_SIZE: '50', METER_CLAIM_MIN_IDLE_MS: '1000' });
const taskQueue = `meter-workflow-${randomInt(1, 2 ** 31)}`;
// Shards of this file's own, from the test allocator: two in one aligned block of 2, so one pump owns both.
const range = allocateShards(4);
const firstShard = Math.ceil(range.first / 2) * 2;
const shards = [parseShard(firstShard), parseShard(firstShard + 1)];
const SHARDS_PER_PUMP = 2;
const pumpId = meterPumpId(firstShard, firstShard + 1);
const settings = { idleDelayMs: 100, idleWaitMs: 1_000, iterationsPerRun: 4, activityTimeoutMs: 30_000, heartbeatTimeoutMs: 5_000 };
const shouldCapture = process.env['TOLLGATE_CAPTURE_HISTORIES'] === '1';
const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
let env: TestWorkflowEnvironment;
let redis: Redis;
let stopWorker: () => Promise<void>;

beforeAll(async () => {
  quietTemporalRuntime();
  redis = new Redis(config.redis.url);
  env = await TestWorkflowEnvironment.createFromExistingServer({ address: config.temporal.address, namespace: config.temporal.namespace });
  stopWorker = await runInProcessWorker({ config, connection: env.nativeConnection, taskQueue });
});

afterAll(async () => {
  await env.client.workflow
    .getHandle(pumpId)
    .terminate('test over')
    .catch(() => undefined);
  await stopWorker();
  await closeAll(env, redis, dynamo);
});

/** An event of a history as JSON (only what the capture looks at). */
interface HistoryEvent {
  eventType: string;
  activityTaskCompletedEventAttributes?: { result?: { payloads?: { data?: string }[] } };
}

/** What each completed batch of a run read (its activity results, decoded). */
function batchReads(events: readonly HistoryEvent[]): number[] {
  return events.flatMap((event) => {
    const data = event.activityTaskCompletedEventAttributes?.result?.payloads?.[0]?.data;
    if (data === undefined) return [];
    const span = JSON.parse(Buffer.from(data, 'base64').toString('utf8')) as { shards: { read: number }[] };
    return [span.shards.reduce((sum, shard) => sum + shard.read, 0)];
  });
}

async function stateOf(shard: number): Promise<MeterState> {
  return pumpStateOf(env.client, shard, shards, SHARDS_PER_PUMP);
}

describe('the pump workflow', () => {
  it('drain each shard into the ledger, continue as new with their counters, and a second start joins the running pump with new settings', async () => {
    // given events on two shard streams
    const tenants = [uniqueTenant(), uniqueTenant()];
    const periods = [Date.UTC(2026, 10, 1)];
    const perShard = new Map<number, TestEvent[]>();
    for (const shard of shards) {
      const events = generateEvents({ tenants, periods, requests: 150, random: seededRandom(shard), prefix: `w${shard}` });
      perShard.set(shard, events);
      await appendEvents(redis, usageStreamKey(shard), events);
    }
    // when the pumps are started (twice: the second start must join, not restart)
    await ensureMeterWorkflows(env.client, { shards, shardsPerPump: SHARDS_PER_PUMP, taskQueue, settings });
    for (const shard of shards) {
      const total = perShard.get(shard)?.length ?? 0;
      // (one activity pumps for a whole span, so the drain may end inside the first run: wait for a continue-as-new too)
      for (let state = await stateOf(shard); state.counters.posted < total || state.counters.runs < 2; state = await stateOf(shard))
        await sleep(200);
    }
    const changed = { ...settings, idleDelayMs: 150 };
    await ensureMeterWorkflows(env.client, { shards, shardsPerPump: SHARDS_PER_PUMP, taskQueue, settings: changed });

    // then every event is in the ledger once, and the counters say so across runs
    const all = [...perShard.values()].flat();
    for (const [key, expected] of expectedBalances(all)) {
      const [tenant = '', periodStart = ''] = key.split('|');
      const partition = await readLedgerPartition(dynamo, { table: ledgerTableName(config.dynamodb.tablePrefix), tenant, periodStart });
      expect(partition.balance, key).toEqual(expected);
    }
    for (const shard of shards) {
      const events = perShard.get(shard) ?? [];
      const state = await stateOf(shard);
      expect(state.counters).toMatchObject({ posted: events.length, read: events.length, duplicates: 0, deadLettered: 0 });
      expect(state.counters.runs).toBeGreaterThan(1);
      const [last] = await redis.xrevrange(usageStreamKey(shard), '+', '-', 'COUNT', 1);
      expect(state.lastEntryId).toBe(last?.[0]);
      // the second start kept the pump (counters carried on) and its new settings apply from the next run
      const handle = env.client.workflow.getHandle(pumpId);
      while ((await handle.query(meterSettingsQuery)).idleDelayMs !== changed.idleDelayMs) await sleep(100);
      expect((await stateOf(shard)).counters.posted).toBe(events.length);
    }

    if (shouldCapture) {
      // a busy run (batches with data), an idle run (only waits that found nothing, state carried over) and one that
      // got new settings; the meterShard runs of older workers stay as meter-shard-*.json
      const wanted = new Map<string, (events: HistoryEvent[]) => boolean>([
        ['busy', (events) => batchReads(events).some((read) => read > 0)],
        ['idle', (events) => batchReads(events).length > 0 && batchReads(events).every((read) => read === 0)],
        // a settings signal in the middle of a run (not one that comes with a start)
        ['signalled', (events) => events.findLastIndex((event) => event.eventType === 'EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED') > 2],
      ]);
      // visibility is eventually consistent, and idle runs come after the drain: look until both are there
      for (let attempt = 0; attempt < 100 && wanted.size > 0; attempt += 1) {
        const runs = env.client.workflow.list({
          query: `WorkflowId = '${pumpId}' AND ExecutionStatus = 'ContinuedAsNew'`,
        });
        for await (const run of runs) {
          const history = await env.client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
          const json = historyToJSON(history);
          const events = (JSON.parse(json) as { events: HistoryEvent[] }).events;
          for (const [name, matches] of wanted) {
            if (!matches(events)) continue;
            writeFileSync(new URL(`../fixtures/histories/meter-pump-${name}.json`, import.meta.url), json);
            wanted.delete(name);
            break; // one fixture per run
          }
          if (wanted.size === 0) break;
        }
        await sleep(200);
      }
      expect([...wanted.keys()]).toEqual([]);
    }
  });
});
