/**
 * Exactly once across Redis crashes: a Redis of this file's own (AOF,
 * `appendfsync always`) is SIGKILLed twice and restarted from its AOF while
 * requests are decided and settled and the `meter/<shard>` pumps (Temporal
 * workflows, in-process worker) ledger the streams. A request whose reply was
 * lost is retried with the same request id (a replay, charged once). At the
 * end the ledger equals the client's own record of admitted usage, each event
 * once, nothing pending, and the audit finds no drift: the admitted counters,
 * streams, consumer group and request records all came back from the AOF.
 *
 * Its shards (meter/<shard> ids on the shared Temporal) come from the test allocator. Replay with TOLLGATE_FAULT_SEED=<seed>.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startRedis, stopProcess, type ManagedProcess } from '../../infra/services.js';
import { RedisDecider, connectDeciderRedis, shardOf, usageStreamKey, type DeciderRedis } from '../../src/decider/index.js';
import { MeteringAuditor, createDynamoClient, deadLetterStreamKey, ledgerTableName, parseShard } from '../../src/metering/index.js';
import { createLogger, systemClock, type TenantId } from '../../src/shared/index.js';
import { ensureMeterWorkflows, meterPumpId } from '../../src/workflows/index.js';
import { createTollgateWorker } from '../../src/workflows/index.js';
import { waitFor } from '../support/poll.js';
import { allocateShards, tenantInShards } from '../support/allocate.js';
import { readLedgerPartition } from '../support/ledger.js';
import { testConfig } from '../support/stack.js';
import { quietTemporalRuntime } from '../support/temporal.js';
import { AdmittedRecord, runTraffic } from '../support/traffic.js';
import { seededRandom } from '../support/usage-events.js';
import { sleep } from '../support/time.js';

const SHARDS = 16_384;
const range = allocateShards(256);
const seed = Number(process.env['TOLLGATE_FAULT_SEED'] ?? randomInt(1, 2 ** 31));
const random = seededRandom(seed);
const scratch = mkdtempSync(join(tmpdir(), 'tollgate-redis-crash-'));
const taskQueue = `redis-crash-${randomBytes(4).toString('hex')}`;
let port: number;
let server: ManagedProcess;
let redis: DeciderRedis;
let env: TestWorkflowEnvironment;
let worker: Worker;
let workerRun: Promise<void>;
let closeWorker: () => void;
let config: ReturnType<typeof testConfig>;
const dynamo = createDynamoClient({ endpoint: testConfig().dynamodb.endpoint, region: testConfig().dynamodb.region });

const startOwnRedis = () => startRedis({ dataDir: scratch, port, name: 'aof', appendfsync: 'always' });

beforeAll(async () => {
  console.log(`[metering-faults-redis] seed ${seed} (replay with TOLLGATE_FAULT_SEED=${seed})`);
  quietTemporalRuntime();
  port = await freePort();
  server = await startOwnRedis();
  config = testConfig({ REDIS_URL: `redis://127.0.0.1:${port}`, DECIDER_SHARDS: String(SHARDS), METER_CLAIM_MIN_IDLE_MS: '500' });
  redis = await connectDeciderRedis({ url: config.redis.url, commandTimeoutMs: 2_000 });
  redis.on('error', () => undefined); // refused connections while Redis is down are expected here
  env = await TestWorkflowEnvironment.createFromExistingServer({ address: config.temporal.address, namespace: config.temporal.namespace });
  const created = await createTollgateWorker({
    config,
    connection: env.nativeConnection,
    logger: createLogger({ level: 'silent', name: 'test' }),
    taskQueue,
  });
  worker = created.worker;
  closeWorker = created.close;
  workerRun = worker.run();
}, 120_000);

let shards: number[] = [];

afterAll(async () => {
  for (const shard of shards)
    await env.client.workflow
      .getHandle(meterPumpId(shard))
      .terminate('test over')
      .catch(() => undefined);
  worker.shutdown();
  await workerRun;
  closeWorker();
  await env.teardown();
  redis.disconnect();
  dynamo.destroy();
  await stopProcess(server);
  rmSync(scratch, { recursive: true, force: true });
});

const tenantInRange = (): TenantId => tenantInShards(range, 'rc');

async function isDrained(): Promise<boolean> {
  for (const shard of shards) {
    const stream = usageStreamKey(parseShard(shard));
    let pending: number;
    try {
      [pending] = (await redis.xpending(stream, 'meter')) as [number];
    } catch (error) {
      // the pump has not created its group on this stream yet (its first batch creates it)
      if (error instanceof Error && error.message.startsWith('NOGROUP')) return false;
      throw error;
    }
    const groups = (await redis.xinfo('GROUPS', stream)) as unknown[][];
    const group = groups[0] ?? [];
    const info = (await redis.xinfo('STREAM', stream)) as unknown[];
    if (pending !== 0 || group[group.indexOf('last-delivered-id') + 1] !== info[info.indexOf('last-generated-id') + 1]) return false;
  }
  return true;
}

describe('metering across Redis crashes (AOF, appendfsync always)', () => {
  it(`ledgers every admitted unit exactly once while Redis is SIGKILLed and restarted twice under traffic and pumping (seed ${seed})`, async () => {
    // given three tenants and the pumps of their shards running
    const tenants = [tenantInRange(), tenantInRange(), tenantInRange()];
    shards = [...new Set(tenants.map((tenant) => shardOf(tenant, SHARDS)))];
    await ensureMeterWorkflows(env.client, {
      shards,
      taskQueue,
      settings: { idleDelayMs: 100, iterationsPerRun: 30, activityTimeoutMs: 20_000, heartbeatTimeoutMs: 3_000 },
    });
    const decider = new RedisDecider(redis, { shardCount: SHARDS, clock: systemClock });
    const record = new AdmittedRecord();
    const crashAt = new Set([40 + Math.floor(random() * 40), 120 + Math.floor(random() * 40)]);
    const pids: number[] = [server.pid];
    let errors = 0;
    const restarts: Promise<void>[] = [];

    // when Redis is killed at two seeded points of the traffic and restarted from its AOF
    await runTraffic({
      decider,
      tenants,
      requests: 200,
      random,
      record,
      onError: async () => {
        errors += 1;
        await sleep(50);
      },
      between: (index) => {
        // the kill lands while the next requests are in flight (some replies are lost), the restart a little later
        if (crashAt.has(index)) {
          const killAfterMs = Math.floor(random() * 4);
          const downMs = 200 + Math.floor(random() * 400);
          restarts.push(
            (async () => {
              await sleep(killAfterMs);
              process.kill(server.pid, 'SIGKILL');
              await sleep(downMs);
              server = await startOwnRedis();
              pids.push(server.pid);
            })(),
          );
        }
        return Promise.resolve();
      },
    });
    await Promise.all(restarts);
    await waitFor('the pumps to drain the streams', isDrained, { timeoutMs: 60_000, intervalMs: 200 });

    // then Redis really restarted, twice
    expect(new Set(pids).size).toBe(3);
    console.log(
      `[metering-faults-redis] crashed before requests ${[...crashAt].join(', ')}; ${errors} calls retried; ${record.admitted} admitted, ${record.replays} of them answered as replays (first reply lost)`,
    );
    // and the ledger is exactly the client's record, each event once
    const table = ledgerTableName(config.dynamodb.tablePrefix);
    for (const [key, expected] of record.byPeriod) {
      const [tenant = '', periodStart = ''] = key.split('|');
      const partition = await readLedgerPartition(dynamo, { table, tenant, periodStart });
      expect(partition.balance, key).toEqual({ amount: expected.amount, entries: expected.eventIds.length });
      expect(partition.entryIds, key).toEqual([...expected.eventIds].sort());
    }
    // and nothing is pending or dead-lettered, and the audit finds the counters equal to the ledger
    const auditor = new MeteringAuditor(redis, dynamo, { shardCount: SHARDS, tablePrefix: config.dynamodb.tablePrefix });
    for (const shard of shards) expect(await redis.xlen(deadLetterStreamKey(parseShard(shard)))).toBe(0);
    for (const key of record.byPeriod.keys()) {
      const [tenant = '', periodStart = ''] = key.split('|');
      const outcome = await auditor.auditTenantPeriod({ tenant, periodStartMs: Date.parse(periodStart) });
      expect(outcome, key).toMatchObject({ kind: 'audited', report: { drift: 0, inFlight: 0 } });
    }
  }, 180_000);
});
