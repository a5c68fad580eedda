/**
 * account/<tenant> closes periods on the Temporal dev server (in-process
 * worker, DynamoDB Local): with 6-second periods it writes the statement at
 * each period end (totals = the ledger, priced with included units, tiers and
 * overage), wakes the tenant's queued deferred jobs, continues as new every
 * period, accepts late events within the grace window and re-rates the
 * statement, finalizes, and from then on the ledger credits the period's
 * events to the next one. A replayed close changes nothing.
 *
 * TOLLGATE_CAPTURE_HISTORIES=1 also writes account-*.json histories to
 * test/fixtures/histories/ (replayed by account-replay.test.ts).
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoAccountStore, DynamoPeriodStore, type PriceSpec, type Statement } from '../../src/billing/index.js';
import { DynamoLedgerStore, createDynamoClient } from '../../src/metering/index.js';
import { parseEventId, parseTenantId } from '../../src/shared/index.js';
import { DynamoJobStore } from '../../src/jobs/index.js';
import { accountTimings, accountWorkflowId, ensureAccountWorkflow, jobWorkflowId } from '../../src/workflows/index.js';
import { createAccountActivities } from '../../src/workflows/activities/index.js';
import { deferredJobId } from '../../src/jobs/index.js';
import { accountStateQuery, type AccountCarry } from '../../src/workflows/workflows/index.js';
import { closeAll } from '../support/teardown.js';
import { waitFor } from '../support/poll.js';
import { testConfig, uniqueTenant } from '../support/stack.js';
import { runInProcessWorker } from '../support/worker-process.js';
import { quietTemporalRuntime } from '../support/temporal.js';
import { sleep } from '../support/time.js';

const PERIOD_SECONDS = 6;
const config = testConfig({ ACCOUNT_LATE_GRACE_MS: '8000', ACCOUNT_ACTIVITY_TIMEOUT_MS: '15000' });
const taskQueue = `account-period-${randomBytes(4).toString('hex')}`;
const shouldCapture = process.env['TOLLGATE_CAPTURE_HISTORIES'] === '1';
const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
const ledger = new DynamoLedgerStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
const periods = new DynamoPeriodStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
const accounts = new DynamoAccountStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
const jobs = new DynamoJobStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
const PRICE: PriceSpec = {
  currency: 'EUR',
  baseFeeMicros: 5_000_000,
  includedUnits: 1_000,
  tiers: [{ upToUnits: 500, unitPriceMicros: 400 }, { unitPriceMicros: 250 }],
};
let env: TestWorkflowEnvironment;
let stopWorker: () => Promise<void>;
const started: string[] = [];

beforeAll(async () => {
  quietTemporalRuntime();
  env = await TestWorkflowEnvironment.createFromExistingServer({ address: config.temporal.address, namespace: config.temporal.namespace });
  stopWorker = await runInProcessWorker({ config, connection: env.nativeConnection, taskQueue });
});

afterAll(async () => {
  for (const id of started)
    await env.client.workflow
      .getHandle(id)
      .terminate('test over')
      .catch(() => undefined);
  await stopWorker();
  await closeAll(env, dynamo);
});

const iso = (ms: number): string => new Date(ms).toISOString();

const until = waitFor;

async function statementOf(tenant: string, periodStartMs: number, version: number): Promise<Statement | undefined> {
  const statement = await periods.getStatement({ tenant: parseTenantId(tenant), periodStart: iso(periodStartMs) });
  return statement !== undefined && statement.version >= version ? statement : undefined;
}

/** Records a queued job and starts its workflow on a task queue nobody polls: it stays waiting, signals land in its history. */
async function queuedJob(tenant: string, requestId: string): Promise<string> {
  const jobId = deferredJobId(parseTenantId(tenant), parseEventId(requestId));
  await jobs.create({
    jobId,
    tenant: parseTenantId(tenant),
    keyId: 'k1',
    requestId,
    operationName: 'Export',
    cost: 1,
    createdAtMs: Date.now(),
    expiresAtMs: Date.now() + 600_000,
    maxOpenJobs: 10,
  });
  const workflowId = jobWorkflowId({ tenant, jobId });
  await env.client.workflow.start('runDeferredJob', { taskQueue: `${taskQueue}-nobody`, workflowId, args: [{}] });
  started.push(workflowId);
  return workflowId;
}

async function wakeSignals(workflowId: string): Promise<number> {
  const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? []).filter((event) => event.workflowExecutionSignaledEventAttributes?.signalName === 'wake').length;
}

describe('account/<tenant> period close', () => {
  it('closes each period at its end with a priced statement equal to the ledger, wakes queued jobs, re-rates late events in the grace window, then credits them to the next period', async () => {
    // given an account with 6-second periods, two queued deferred jobs and a finished one
    const tenant = parseTenantId(uniqueTenant('c'));
    await accounts.put(
      { tenant, billingPeriod: { unit: 'second', lengthSeconds: PERIOD_SECONDS, anchorDay: 1, timeZone: 'UTC' }, price: PRICE },
      Date.now(),
    );
    const waiting = [await queuedJob(tenant, 'req-a'), await queuedJob(tenant, 'req-b')];
    const finishedJob = deferredJobId(tenant, parseEventId('req-c'));
    await jobs.create({
      jobId: finishedJob,
      tenant,
      keyId: 'k1',
      requestId: 'req-c',
      operationName: null,
      cost: 1,
      createdAtMs: 1,
      expiresAtMs: 2,
      maxOpenJobs: 10,
    });
    await jobs.finish({ tenant, jobId: finishedJob, status: 'expired', errorCode: 'JOB_EXPIRED', nowMs: 3 });

    // when the account workflow starts (twice: the second joins)
    const timings = accountTimings(config);
    await ensureAccountWorkflow(env.client, { tenant, taskQueue, timings });
    await ensureAccountWorkflow(env.client, { tenant, taskQueue, timings });
    const handle = env.client.workflow.getHandle(accountWorkflowId(tenant));
    started.push(accountWorkflowId(tenant));
    const first = await until('the first period', async () => (await handle.query(accountStateQuery)).period);
    // the next period is wholly ahead: its usage is posted before it even starts
    const next = { startMs: first.endMs, endMs: first.endMs + PERIOD_SECONDS * 1000 };
    const usage = [
      { id: 'u1', amount: 900, operation: 'listProducts' },
      { id: 'u2', amount: 600, operation: 'exportOrders' },
      { id: 'u3', amount: 300, operation: 'listProducts' },
    ];
    for (const item of usage) {
      await ledger.postEntry({
        tenant,
        periodStart: iso(next.startMs),
        eventId: parseEventId(item.id),
        kind: 'usage.reserved.v1',
        amount: item.amount,
        operation: item.operation,
      });
    }

    // then the first period is closed and the queued jobs (only those) are woken
    await until('the first close', () => statementOf(tenant, first.startMs, 1));
    for (const workflowId of waiting)
      await until(`wake of ${workflowId}`, async () => ((await wakeSignals(workflowId)) >= 1 ? true : undefined));
    // and the workflow continued as new into the next period
    const afterFirst = await until('the next run', async () => {
      const state: AccountCarry = await handle.query(accountStateQuery);
      return state.counters.runs >= 2 ? state : undefined;
    });
    expect(afterFirst.period).toEqual(next);
    expect(afterFirst.counters.woken).toBe(2);

    // when the next period closes
    const closed = await until('the second close', () => statementOf(tenant, next.startMs, 1));
    // then its statement is the ledger's, priced: 1 800 units = 1 000 included + 500 at 400 + 300 at 250
    const balance = await ledger.getBalance({ tenant, periodStart: iso(next.startMs) });
    expect(closed).toMatchObject({ version: 1, isFinal: false, periodEnd: iso(next.endMs) });
    expect(closed.usage).toMatchObject({ units: 1_800, entries: 3, byOperation: { listProducts: 1_200, exportOrders: 600 } });
    expect(closed.usage.units).toBe(balance.amount);
    expect(closed.price).toMatchObject({ units: 1_800, overageUnits: 800, totalMicros: 5_000_000 + 500 * 400 + 300 * 250 });

    // when an event of the closed period arrives within the grace window
    const graceEntry = {
      tenant,
      periodStart: iso(next.startMs),
      eventId: parseEventId('u4'),
      kind: 'usage.reserved.v1',
      amount: 200,
      operation: 'listProducts',
    };
    expect(await ledger.postEntry(graceEntry)).toEqual({ isDuplicate: false, creditedPeriodStart: iso(next.startMs) });
    // then at the end of the grace window the period is finalized and re-rated (version 2)
    const final = await until('the final statement', () => statementOf(tenant, next.startMs, 2));
    expect(final).toMatchObject({ version: 2, isFinal: true, usage: { units: 2_000, entries: 4 } });
    expect(final.price.totalMicros).toBe(5_000_000 + 500 * 400 + 500 * 250);
    expect(await periods.finalizedAtMs({ tenant, periodStart: iso(next.startMs) })).not.toBeNull();

    // when an event of the finalized period arrives, and is retried
    const lateEntry = { ...graceEntry, eventId: parseEventId('u5'), amount: 50 };
    const late = await ledger.postEntry(lateEntry);
    const retried = await ledger.postEntry(lateEntry);
    // then it is credited to the following period once, marked with its own
    const following = iso(next.endMs);
    expect(late).toEqual({ isDuplicate: false, creditedPeriodStart: following });
    expect(retried).toEqual({ isDuplicate: true, creditedPeriodStart: following });
    expect(await periods.readUsage({ tenant, periodStart: following })).toMatchObject({ units: 50, lateUnits: 50, lateEntries: 1 });
    expect((await ledger.getBalance({ tenant, periodStart: iso(next.startMs) })).amount).toBe(2_000);

    // when the close and the finalization are replayed (a retried activity), then nothing changes
    const activities = createAccountActivities({ accounts, periods, jobs, client: env.client, webhookTimeoutMs: 1_000 });
    const replayedClose = await activities.closePeriod({ tenant, periodStartMs: next.startMs, periodEndMs: next.endMs });
    const replayedFinal = await activities.finalizePeriod({
      tenant,
      periodStartMs: next.startMs,
      periodEndMs: next.endMs,
      nextPeriodStartMs: next.endMs,
    });
    expect(replayedClose).toMatchObject({ version: 2, units: 2_000, isWritten: false });
    expect(replayedFinal).toMatchObject({ version: 2, units: 2_000, isWritten: false });
    expect(await statementOf(tenant, next.startMs, 2)).toEqual(final);
    const state: AccountCarry = await handle.query(accountStateQuery);
    expect(state.counters.closes).toBeGreaterThanOrEqual(2);
    expect(state.counters.finalizations).toBeGreaterThanOrEqual(1);

    if (shouldCapture) {
      const wanted = new Map<string, (activities: string[]) => boolean>([
        [
          'account-period-close',
          (names) => names.includes('closePeriod') && names.includes('wakeWaitingJobs') && !names.includes('finalizePeriod'),
        ],
        ['account-finalize', (names) => names.includes('finalizePeriod') && names.includes('closePeriod')],
      ]);
      for (let attempt = 0; attempt < 100 && wanted.size > 0; attempt += 1) {
        for await (const run of env.client.workflow.list({
          query: `WorkflowId = '${accountWorkflowId(tenant)}' AND ExecutionStatus = 'ContinuedAsNew'`,
        })) {
          const json = historyToJSON(await env.client.workflow.getHandle(run.workflowId, run.runId).fetchHistory());
          const names = (
            JSON.parse(json) as { events: { activityTaskScheduledEventAttributes?: { activityType?: { name?: string } } }[] }
          ).events
            .map((event) => event.activityTaskScheduledEventAttributes?.activityType?.name)
            .filter((name): name is string => name !== undefined);
          for (const [name, matches] of wanted) {
            if (!matches(names)) continue;
            writeFileSync(new URL(`../fixtures/histories/${name}.json`, import.meta.url), json);
            wanted.delete(name);
            break;
          }
        }
        await sleep(500);
      }
      expect([...wanted.keys()]).toEqual([]);
    }
  }, 120_000);
});
