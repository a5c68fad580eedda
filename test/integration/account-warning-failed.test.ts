/**
 * A warning the account workflow gives up on (its webhook failed every
 * attempt) is recorded `failed` with the reason, counted, and never sent
 * again: not by a second signal in the same run, and not by a later delivery
 * (the record is the source of truth across runs). The Temporal dev server,
 * DynamoDB Local and a real local webhook receiver that answers 500 to
 * everything.
 *
 * TOLLGATE_CAPTURE_HISTORIES=1 also writes the run's history (with the patch
 * marker of the failed-record step) to test/fixtures/histories/account-warning-failed.json,
 * replayed by account-replay.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { periodAt } from '../../src/decider/index.js';
import { DynamoAccountStore, DynamoPeriodStore } from '../../src/billing/index.js';
import { createDynamoClient } from '../../src/metering/index.js';
import { parseTenantId } from '../../src/shared/index.js';
import { DynamoJobStore } from '../../src/jobs/index.js';
import { accountTimings, accountWorkflowId, ensureAccountWorkflow } from '../../src/workflows/index.js';
import { createAccountActivities } from '../../src/workflows/activities/index.js';
import { accountStateQuery } from '../../src/workflows/workflows/index.js';
import { closeAll } from '../support/teardown.js';
import { waitFor } from '../support/poll.js';
import { testConfig, uniqueTenant } from '../support/stack.js';
import { runInProcessWorker } from '../support/worker-process.js';
import { quietTemporalRuntime } from '../support/temporal.js';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';
import { MONTH, sleep } from '../support/time.js';

const SECRET = 'failing-secret-0123456789abcdef';
const ATTEMPTS = 3;
const config = testConfig({
  ACCOUNT_WEBHOOK_TIMEOUT_MS: '2000',
  ACCOUNT_WEBHOOK_RETRY_INITIAL_MS: '100',
  ACCOUNT_WEBHOOK_RETRY_MAX_MS: '200',
  ACCOUNT_WEBHOOK_MAX_ATTEMPTS: String(ATTEMPTS),
});
const taskQueue = `account-failed-${randomBytes(4).toString('hex')}`;
const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
const periods = new DynamoPeriodStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
const accounts = new DynamoAccountStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
let env: TestWorkflowEnvironment;
let receiver: WebhookReceiver;
let stopWorker: () => Promise<void>;
const started: string[] = [];

beforeAll(async () => {
  quietTemporalRuntime();
  receiver = await startWebhookReceiver({ secret: SECRET, failFirst: Number.MAX_SAFE_INTEGER });
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
  await closeAll(env, receiver, dynamo);
});

describe('a warning whose delivery is given up', () => {
  it('is recorded failed with its reason after the configured attempts, and is never sent again', async () => {
    // given a tenant whose webhook answers 500 to every request
    const tenant = parseTenantId(uniqueTenant('f'));
    await accounts.put(
      {
        tenant,
        billingPeriod: MONTH,
        webhookUrl: receiver.url,
        webhookSecret: SECRET,
        price: { currency: 'EUR', baseFeeMicros: 0, includedUnits: 0, tiers: [{ unitPriceMicros: 1 }] },
      },
      Date.now(),
    );
    const periodStartMs = periodAt(MONTH, Date.now()).startMs;
    const ref = { tenant, periodStart: new Date(periodStartMs).toISOString(), limitId: 'month', percent: 80 };
    const timings = accountTimings(config);

    // when the 80 % threshold is signalled to its account workflow
    started.push(accountWorkflowId(tenant));
    await ensureAccountWorkflow(env.client, { tenant, taskQueue, timings, warnings: [{ periodStartMs, limitId: 'month', percent: 80 }] });
    await waitFor('the warning to be recorded failed', async () => (await periods.getWarning(ref))?.status === 'failed');

    // then every attempt was POSTed (signed, one key), and the record says failed with the webhook's answer
    const record = await periods.getWarning(ref);
    expect(record).toMatchObject({ status: 'failed', idempotencyKey: `warning-${tenant}-${periodStartMs}-month-80` });
    expect(record?.failure).toMatch(/answered 500/);
    expect(record?.finishedAtMs).toBeGreaterThan(0);
    expect(receiver.requests).toHaveLength(ATTEMPTS);
    expect(receiver.requests.every((request) => request.isSignatureValid)).toBe(true);
    const handle = env.client.workflow.getHandle(accountWorkflowId(tenant));
    const counted = Date.now() + 10_000;
    while (Date.now() < counted && (await handle.query(accountStateQuery)).counters.failed !== 1) await sleep(100);
    expect((await handle.query(accountStateQuery)).counters).toMatchObject({ deliveries: 1, finished: 0, failed: 1 });

    // when the same threshold is signalled again in the same run
    await ensureAccountWorkflow(env.client, { tenant, taskQueue, timings, warnings: [{ periodStartMs, limitId: 'month', percent: 80 }] });
    await sleep(1_500);
    // and a later run's delivery of it starts (the activity itself, as a new run would call it)
    const activities = createAccountActivities({
      accounts,
      periods,
      jobs: new DynamoJobStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix }),
      client: env.client,
      webhookTimeoutMs: 2_000,
    });
    const again = await activities.deliverWarning({ tenant, periodStartMs, limitId: 'month', percent: 80 });

    // then nothing more was POSTed and the record is unchanged
    expect(again).toEqual({ status: 'failed', isFinishedNow: false });
    expect(receiver.requests).toHaveLength(ATTEMPTS);
    expect((await handle.query(accountStateQuery)).counters).toMatchObject({ received: 2, deliveries: 1, failed: 1 });
    expect(await periods.getWarning(ref)).toEqual(record);

    // and giving up on a warning that was delivered after all keeps it delivered
    const other = { ...ref, percent: 100 };
    await periods.beginWarning({ ...other, idempotencyKey: 'k', nowMs: 1 });
    await periods.finishWarning({ ...other, status: 'delivered', nowMs: 2 });
    expect(await activities.abandonWarning({ tenant, periodStartMs, limitId: 'month', percent: 100, failure: 'late' })).toEqual({
      status: 'delivered',
    });

    if (process.env['TOLLGATE_CAPTURE_HISTORIES'] === '1') {
      writeFileSync(
        new URL('../fixtures/histories/account-warning-failed.json', import.meta.url),
        historyToJSON(await handle.fetchHistory()),
      );
    }
  }, 120_000);
});
