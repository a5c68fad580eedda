/**
 * The worker's stall signal, seen firing live (issue 19): the real worker
 * entry point (src/workflows/worker.ts) pumps 16 shards (its own Temporal dev
 * server, its own Redis database) into DynamoDB reached through a TCP proxy.
 * While events keep arriving, the proxy holds every byte the worker sends to
 * DynamoDB: each batch hangs in its ledger write (the worker is busy, nothing
 * is acknowledged), the lag grows. Then /ready answers 503
 * `METER_FLEET_STALLED` with the figures that say so and
 * `tollgate_meter_fleet_stalled` is 1; once the proxy lets the bytes through,
 * the fleet drains, /ready is 200 again, the gauge 0, and the ledger holds
 * every event exactly once.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { freePort, startTemporal, stopProcess, type ManagedProcess } from '../../infra/services.js';
import { usageStreamKey } from '../../src/decider/index.js';
import { createDynamoClient, ledgerTableName, parseShard, readStreamLag } from '../../src/metering/index.js';
import { closeAll } from '../support/teardown.js';
import { waitFor } from '../support/poll.js';
import { allocateRedisDb } from '../support/allocate.js';
import { readLedgerPartition } from '../support/ledger.js';
import { stackEnv, testStack, uniqueTenant } from '../support/stack.js';
import { killWorkerProcesses } from '../support/worker-process.js';
import { gauge, scrape, startEntryPoint } from '../support/fleet.js';
import { startHoldingProxy, type HoldingProxy } from '../support/holding-proxy.js';
import { appendEvents, expectedBalances, generateEvents, seededRandom, type TestEvent } from '../support/usage-events.js';
import { sleep } from '../support/time.js';

const SHARDS = 16;
const ALL_SHARDS = Array.from({ length: SHARDS }, (_, shard) => shard);
const STALL_AFTER_MS = 3_000;
const stack = testStack();
const { url: redisUrl } = allocateRedisDb();
const random = seededRandom(73);
const tenants = Array.from({ length: 6 }, () => uniqueTenant('stall'));
const periods = [Date.UTC(2026, 10, 1)];
const dynamo = createDynamoClient({ endpoint: stack.dynamodbEndpoint, region: stack.dynamodbRegion });
const appended: TestEvent[] = [];
let temporal: ManagedProcess;
let temporalAddress: string;
let redis: Redis;
let proxy: HoldingProxy;

beforeAll(async () => {
  const port = await freePort();
  temporal = await startTemporal({
    dataDir: join(stack.dataDir, `stall-${randomBytes(4).toString('hex')}`),
    port,
    httpPort: await freePort(),
    persistent: false,
  });
  temporalAddress = `127.0.0.1:${port}`;
  redis = new Redis(redisUrl);
  const dynamoUrl = new URL(stack.dynamodbEndpoint);
  proxy = await startHoldingProxy({ host: dynamoUrl.hostname, port: Number(dynamoUrl.port) });
}, 180_000);

afterAll(async () => {
  killWorkerProcesses();
  proxy.release();
  await proxy.close();
  await closeAll(redis, dynamo);
  await stopProcess(temporal);
});

/** A few seeded events on a few seeded shards every 200 ms, until stopped; remembered in `appended`. */
function steadyTraffic(): { stop: () => Promise<void> } {
  let isRunning = true;
  const loop = (async () => {
    for (let tick = 0; isRunning; tick += 1) {
      for (let index = 0; index < 3; index += 1) {
        const shard = Math.floor(random() * SHARDS);
        const events = generateEvents({ tenants, periods, requests: 2, random, prefix: `stall${tick}-${index}` });
        await appendEvents(redis, usageStreamKey(parseShard(shard)), events);
        appended.push(...events);
      }
      await sleep(200);
    }
  })();
  return {
    stop: async () => {
      isRunning = false;
      await loop;
    },
  };
}

describe('the worker stall signal', () => {
  it('reports not-ready METER_FLEET_STALLED while DynamoDB holds every write and events keep arriving, and recovers after', async () => {
    // given the worker entry point pumping 16 shards into DynamoDB through the proxy, under steady traffic
    const metricsPort = await freePort();
    const worker = startEntryPoint({
      ...stackEnv(),
      REDIS_URL: redisUrl,
      TEMPORAL_ADDRESS: temporalAddress,
      TEMPORAL_NAMESPACE: 'default',
      DYNAMODB_ENDPOINT: `http://127.0.0.1:${proxy.port}`,
      DECIDER_SHARDS: String(SHARDS),
      METER_CLAIM_MIN_IDLE_MS: '2000',
      METER_HEARTBEAT_TIMEOUT_MS: '3000',
      METER_IDLE_DELAY_MS: '250',
      METER_IDLE_WAIT_MS: '5000',
      WORKER_METRICS_PORT: String(metricsPort),
      WORKER_STALL_AFTER_MS: String(STALL_AFTER_MS),
    });
    const traffic = steadyTraffic();
    onTestFinished(() => traffic.stop());
    const alive = (): void => expect(worker.child.exitCode, worker.output()).toBeNull();
    await waitFor(
      'the worker to be ready and to ledger events',
      async () => {
        alive();
        const health = await scrape(metricsPort).catch(() => undefined);
        return health?.ready === 200 && /^tollgate_meter_events_total\{outcome="posted"\} [1-9]/m.test(health.metrics);
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );

    // when DynamoDB stops answering (every byte the worker sends it is held) while events keep arriving
    proxy.hold();
    const seen: string[] = [];
    const stalled = await waitFor(
      'the worker to report its fleet stalled',
      async () => {
        alive();
        const health = await scrape(metricsPort);
        seen.push(`${health.ready} ${JSON.stringify(health.readyBody)} stalled=${gauge(health.metrics, 'tollgate_meter_fleet_stalled')}`);
        return health.ready === 503 && health;
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}; /ready and the stall gauge seen:\n${seen.slice(-20).join('\n')}`);
    });

    // then /ready says why, with the figures, and the stall gauge fires
    console.log(`[metering-fleet-stall] stalled: ${JSON.stringify(stalled.readyBody)} (after ${seen.length} scrapes)`);
    expect(stalled.readyBody).toMatchObject({ ready: false, reason: 'METER_FLEET_STALLED' });
    expect(stalled.readyBody['unacknowledged']).toBeGreaterThan(0);
    expect(stalled.readyBody['oldestUnacknowledgedAgeSeconds']).toBeGreaterThanOrEqual(STALL_AFTER_MS / 1_000);
    expect(stalled.readyBody['secondsSinceProgress']).toBeGreaterThanOrEqual(STALL_AFTER_MS / 1_000);
    expect(gauge(stalled.metrics, 'tollgate_meter_fleet_stalled')).toBe(1);
    expect(gauge(stalled.metrics, 'tollgate_meter_unacknowledged_entries')).toBeGreaterThan(0);

    // when DynamoDB answers again
    proxy.release();
    // then the fleet drains the lag and the worker is ready again, not stalled
    await waitFor(
      'the worker to be ready again',
      async () => {
        alive();
        const health = await scrape(metricsPort);
        return health.ready === 200 && gauge(health.metrics, 'tollgate_meter_fleet_stalled') === 0;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    await traffic.stop();
    await waitFor('the lag to return to 0', async () => (await readStreamLag(redis, { shards: ALL_SHARDS })).unacknowledged === 0, {
      timeoutMs: 120_000,
      intervalMs: 500,
    });
    // and the ledger holds every event appended, exactly once
    const table = ledgerTableName(stack.tablePrefix);
    for (const [key, expected] of expectedBalances(appended)) {
      const [tenant = '', periodStart = ''] = key.split('|');
      const partition = await readLedgerPartition(dynamo, { table, tenant, periodStart });
      const ids = appended.filter((event) => `${event.tenant}|${new Date(event.bp).toISOString()}` === key).map((event) => event.eventId);
      expect(partition.balance, key).toEqual(expected);
      expect(partition.entryIds, key).toEqual(ids.sort());
    }
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
  }, 420_000);
});
