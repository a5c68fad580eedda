/**
 * `npm start` pumps: the real worker entry point (src/workflows/worker.ts)
 * ensures a meter/<shard> workflow for every shard and they ledger what the
 * streams hold. Runs on its own Redis database (from the test allocator) with 4 shards, so it
 * never consumes the streams other tests write on db 0.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usageStreamKey } from '../../src/decider/index.js';
import { createDynamoClient, ledgerTableName, parseShard } from '../../src/metering/index.js';
import { freePort } from '../../infra/services.js';
import { DynamoAuditStore } from '../../src/metering/index.js';
import { auditWorkflowId, jobSweepStateQuery, jobSweepWorkflowId, meterPumpId } from '../../src/workflows/index.js';
import { closeAll } from '../support/teardown.js';
import { waitFor } from '../support/poll.js';
import { allocateRedisDb } from '../support/allocate.js';
import { readLedgerPartition } from '../support/ledger.js';
import { testStack, uniqueTenant } from '../support/stack.js';
import { appendEvents, expectedBalances, generateEvents, seededRandom } from '../support/usage-events.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const stack = testStack();
const SHARDS = 4;
const { url: redisUrl } = allocateRedisDb();
const taskQueue = `worker-entry-${randomBytes(4).toString('hex')}`;
const dynamo = createDynamoClient({ endpoint: stack.dynamodbEndpoint, region: stack.dynamodbRegion });
let redis: Redis;
let temporal: Connection;

beforeAll(async () => {
  redis = new Redis(redisUrl);
  temporal = await Connection.connect({ address: stack.temporalAddress });
});

afterAll(async () => {
  const client = new Client({ connection: temporal, namespace: stack.temporalNamespace });
  await client.workflow
    .getHandle(meterPumpId(0, SHARDS - 1))
    .terminate('test over')
    .catch(() => undefined);
  await client.workflow
    .getHandle(auditWorkflowId('all'))
    .terminate('test over')
    .catch(() => undefined);
  await client.workflow
    .getHandle(jobSweepWorkflowId('all'))
    .terminate('test over')
    .catch(() => undefined);
  await closeAll(temporal, redis, dynamo);
});

describe('worker entry point', () => {
  it('starts the pump of its shards that ledgers their usage streams and the audit, serves its metrics, and stops cleanly on SIGTERM', async () => {
    // given events on two of the four shards' streams
    const tenants = [uniqueTenant(), uniqueTenant()];
    const events = [1, 3].flatMap((shard) =>
      generateEvents({ tenants, periods: [Date.UTC(2026, 10, 1)], requests: 60, random: seededRandom(shard), prefix: `e${shard}` }),
    );
    await appendEvents(
      redis,
      usageStreamKey(parseShard(1)),
      events.filter((event) => event.eventId.startsWith('e1-')),
    );
    await appendEvents(
      redis,
      usageStreamKey(parseShard(3)),
      events.filter((event) => event.eventId.startsWith('e3-')),
    );
    // when the worker process starts
    const metricsPort = await freePort();
    const startedAtMs = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/workflows/worker.ts'], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env['PATH'] ?? '',
        HOME: process.env['HOME'] ?? '',
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        REDIS_URL: redisUrl,
        DECIDER_SHARDS: String(SHARDS),
        TEMPORAL_ADDRESS: stack.temporalAddress,
        TEMPORAL_NAMESPACE: stack.temporalNamespace,
        TEMPORAL_TASK_QUEUE: taskQueue,
        DYNAMODB_ENDPOINT: stack.dynamodbEndpoint,
        DYNAMODB_REGION: stack.dynamodbRegion,
        DYNAMODB_TABLE_PREFIX: stack.tablePrefix,
        METER_IDLE_DELAY_MS: '100',
        AUDIT_INTERVAL_MS: '200',
        // the sweep runs, but over jobs created before 1970 only (none): other files' jobs share these tables
        JOBS_SWEEP_INTERVAL_MS: '200',
        JOBS_SWEEP_GRACE_MS: String(100 * 365 * 86_400_000),
        WORKER_METRICS_PORT: String(metricsPort),
        LOG_LEVEL: 'info',
      },
    });
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    // then every event reaches the ledger and every shard has a running pump
    const table = ledgerTableName(stack.tablePrefix);
    for (const [key, expected] of expectedBalances(events)) {
      const [tenant = '', periodStart = ''] = key.split('|');
      const partition = await waitFor(
        `${key} ledgered`,
        async () => {
          expect(child.exitCode, output).toBeNull();
          const found = await readLedgerPartition(dynamo, { table, tenant, periodStart });
          return found.balance?.entries === expected.entries && found;
        },
        { intervalMs: 200 },
      );
      expect(partition.balance, key).toEqual(expected);
    }
    const client = new Client({ connection: temporal, namespace: stack.temporalNamespace });
    // one pump owns the SHARDS shards (METER_SHARDS_PER_PUMP defaults to 16)
    const description = await client.workflow.getHandle(meterPumpId(0, SHARDS - 1)).describe();
    expect(description.status.name).toBe('RUNNING');
    expect(description.taskQueue).toBe(taskQueue);
    expect(output).toContain('meter pumps running');
    // and the audit runs on the same task queue and stores its reports (these synthetic events have no admitted counters)
    const audit = await client.workflow.getHandle(auditWorkflowId('all')).describe();
    expect(audit.status.name).toBe('RUNNING');
    expect(audit.taskQueue).toBe(taskQueue);
    const store = new DynamoAuditStore(dynamo, { tablePrefix: stack.tablePrefix });
    const report = await waitFor(
      'an audit report of this run',
      async () => {
        expect(child.exitCode, output).toBeNull();
        const found = await store.latest('all');
        return found !== undefined && found.finishedAtMs >= startedAtMs && found;
      },
      { intervalMs: 200 },
    );
    expect(report.summary).toMatchObject({ drifting: 0, absoluteDrift: 0 });
    // and the jobs sweep runs on the same task queue, cycle after cycle
    const sweep = client.workflow.getHandle(jobSweepWorkflowId('all'));
    expect((await sweep.describe()).taskQueue).toBe(taskQueue);
    await waitFor(
      'two sweep cycles',
      async () => {
        expect(child.exitCode, output).toBeNull();
        return (await sweep.query(jobSweepStateQuery)).completedCycles >= 2;
      },
      { intervalMs: 200 },
    );
    expect(output).toContain('jobs sweep running');
    // and /metrics counts every ledgered event once
    const scrape = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const posted = Number(/tollgate_meter_events_total\{outcome="posted"\} (\d+)/.exec(scrape)?.[1]);
    expect(posted).toBe(events.length);
    expect(scrape).toMatch(/tollgate_audit_cycles_total\{result="clean"\} [1-9]/);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
