/**
 * The `audit/<scope>` workflow on the real stack: it walks the admitted
 * counters in SCAN pages (several pages and runs: continue-as-new), stores
 * each cycle's report in the config table and finds the drift we inject.
 * Runs on its own Redis database (from the test allocator, 8 shards), so its SCAN sees only
 * this file's keys. Its start policies (USE_EXISTING, ALLOW_DUPLICATE) are
 * asserted, and its history replays deterministically.
 */
import { randomBytes } from 'node:crypto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisDecider, admittedKey, connectDeciderRedis, shardOf, type DeciderRedis } from '../../src/decider/index.js';
import {
  DynamoAuditStore,
  DynamoLedgerStore,
  EMPTY_AUDIT_SUMMARY,
  MeteringAuditor,
  UsagePump,
  addToSummary,
  createDynamoClient,
  parseShard,
  type AuditReport,
  type AuditScanPosition,
} from '../../src/metering/index.js';
import { createLogger, parseTenantId, systemClock } from '../../src/shared/index.js';
import { auditStateQuery, auditWorkflowId, ensureAuditWorkflow, type AuditSettings } from '../../src/workflows/index.js';
import { createTollgateWorker } from '../../src/workflows/index.js';
import { closeAll } from '../support/teardown.js';
import { captureHistory, recordedHistories, replayFailures } from '../support/replay.js';
import { allocateRedisDb } from '../support/allocate.js';
import { testConfig, uniqueTenant } from '../support/stack.js';
import { quietTemporalRuntime } from '../support/temporal.js';
import { AdmittedRecord, monthStartMs, runTraffic } from '../support/traffic.js';
import { seededRandom } from '../support/usage-events.js';

const SHARDS = 8;
const { url: redisUrl } = allocateRedisDb();
const config = testConfig({ REDIS_URL: redisUrl, DECIDER_SHARDS: String(SHARDS) });
const taskQueue = `audit-${randomBytes(4).toString('hex')}`;
const scope = `test-${randomBytes(4).toString('hex')}`;
const settings: AuditSettings = { intervalMs: 300, scanCount: 2, pagesPerRun: 3, activityTimeoutMs: 30_000 };
const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
const store = new DynamoAuditStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
let redis: DeciderRedis;
let env: TestWorkflowEnvironment;
let worker: Worker;
let workerRun: Promise<void>;
let closeWorker: () => void;

beforeAll(async () => {
  quietTemporalRuntime();
  redis = await connectDeciderRedis({ url: redisUrl, commandTimeoutMs: 5_000 });
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
});

afterAll(async () => {
  await env.client.workflow
    .getHandle(auditWorkflowId(scope))
    .terminate('test over')
    .catch(() => undefined);
  worker.shutdown();
  await workerRun;
  closeWorker();
  await closeAll(env, redis, dynamo);
});

async function reportAfter(startedAfterMs: number): Promise<AuditReport> {
  for (;;) {
    const report = await store.latest(scope);
    if (report !== undefined && report.startedAtMs > startedAfterMs) return report;
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
}

describe('audit/<scope> workflow', () => {
  it('reports the tenant-periods it audited and exactly the drift injected, across pages and continue-as-new', async () => {
    // given three tenants' traffic, pumped into the ledger
    const decider = new RedisDecider(redis, { shardCount: SHARDS, clock: systemClock });
    const tenants = [uniqueTenant('aw'), uniqueTenant('aw'), uniqueTenant('aw')];
    const record = new AdmittedRecord();
    await runTraffic({ decider, tenants, requests: 30, random: seededRandom(61), record });
    const pump = new UsagePump(redis, new DynamoLedgerStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix }));
    for (let shard = 0; shard < SHARDS; shard += 1) {
      for (let cursor = '0-0'; ;) {
        const result = await pump.pumpBatch({ shard: parseShard(shard), claimCursor: cursor });
        cursor = result.claimCursor;
        if (result.read === 0) break;
      }
    }
    // (what its database held before this run, should the stack be reused: the counts below are relative to it)
    const baseline = await (async () => {
      const auditor = new MeteringAuditor(redis, dynamo, { shardCount: SHARDS, tablePrefix: config.dynamodb.tablePrefix });
      let summary = EMPTY_AUDIT_SUMMARY;
      for (let position: AuditScanPosition | null = { node: 0, cursor: '0' }; position !== null;) {
        const page = await auditor.auditPage({ position, count: 1_000 });
        const reports = page.outcomes.flatMap((outcome) =>
          outcome.kind === 'audited' && !tenants.includes(outcome.report.tenant) ? [outcome.report] : [],
        );
        summary = addToSummary(summary, { reports, unsettled: 0 });
        position = page.next;
      }
      return summary;
    })();
    // when the audit starts, twice (the second start joins the first)
    const firstRun = await ensureAuditWorkflow(env.client, { scope, taskQueue, settings });
    const secondRun = await ensureAuditWorkflow(env.client, { scope, taskQueue, settings });
    expect(secondRun).toBe(firstRun);
    // then a clean cycle
    const clean = await reportAfter(0);
    expect(clean.summary).toMatchObject({
      audited: baseline.audited + 3,
      drifting: baseline.drifting,
      absoluteDrift: baseline.absoluteDrift,
      unsettled: 0,
    });

    // when one tenant's counter moves by 7 units no event carries
    const drifting = parseTenantId(tenants[1] ?? '');
    await redis.incrby(admittedKey(shardOf(drifting, SHARDS), drifting, monthStartMs(Date.now())), 7);
    const injectedAtMs = Date.now();
    // then the next full cycle reports it, with the tenant in its samples
    const found = await reportAfter(injectedAtMs);
    expect(found.summary).toMatchObject({
      audited: baseline.audited + 3,
      drifting: baseline.drifting + 1,
      absoluteDrift: baseline.absoluteDrift + 7,
    });
    expect(found.summary.samples).toContainEqual(expect.objectContaining({ tenant: drifting, drift: 7 }));
    // and it paged and continued as new on the way (2 keys per page, 3 pages per run)
    const handle = env.client.workflow.getHandle(auditWorkflowId(scope));
    const state = await handle.query(auditStateQuery);
    expect(state.completedCycles).toBeGreaterThanOrEqual(2);
    expect((await handle.describe()).runId).not.toBe(firstRun);

    // and its history, and the recorded fixtures, replay deterministically
    const history = await handle.fetchHistory();
    // TOLLGATE_CAPTURE_HISTORIES=1 rewrites the fixture from this run
    captureHistory('audit-ledger.json', history);
    const fixtures = recordedHistories(/^audit-/);
    expect(fixtures.length).toBeGreaterThanOrEqual(1);
    expect(await replayFailures([{ workflowId: auditWorkflowId(scope), history }, ...fixtures])).toEqual([]);
  });

  it('a terminated audit is started again by the next ensure (ALLOW_DUPLICATE), with a new run', async () => {
    const handle = env.client.workflow.getHandle(auditWorkflowId(scope));
    const before = (await handle.describe()).runId;
    await handle.terminate('operator stopped it');
    const after = await ensureAuditWorkflow(env.client, { scope, taskQueue, settings });
    expect(after).not.toBe(before);
    expect((await env.client.workflow.getHandle(auditWorkflowId(scope)).describe()).status.name).toBe('RUNNING');
  });
});
