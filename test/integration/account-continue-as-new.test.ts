/**
 * account/<tenant> under forced continue-as-new: a Temporal dev server of its
 * own with `limit.historyCount.suggestContinueAsNew=60`, so the workflow
 * continues as new every few dozen events while signals keep arriving. 150
 * distinct thresholds, each signalled three times in concurrent bursts, are
 * each POSTed exactly once to a real local webhook receiver, across many runs:
 * no signal lost, no warning sent twice.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startTemporal, stopProcess, type ManagedProcess } from '../../infra/services.js';
import { periodAt } from '../../src/decider/index.js';
import { DynamoAccountStore, DynamoPeriodStore } from '../../src/billing/index.js';
import { createDynamoClient } from '../../src/metering/index.js';
import { parseTenantId } from '../../src/shared/index.js';
import { accountTimings, accountWorkflowId, ensureAccountWorkflow, type WarningRequest } from '../../src/workflows/index.js';
import { accountStateQuery, type AccountCarry } from '../../src/workflows/workflows/index.js';
import { closeAll } from '../support/teardown.js';
import { waitFor } from '../support/poll.js';
import { testConfig, testStack, uniqueTenant } from '../support/stack.js';
import { runInProcessWorker } from '../support/worker-process.js';
import { quietTemporalRuntime } from '../support/temporal.js';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';
import { MONTH, sleep } from '../support/time.js';

const SECRET = 'can-test-secret-0123456789';
const shouldCapture = process.env['TOLLGATE_CAPTURE_HISTORIES'] === '1';
const taskQueue = `account-can-${randomBytes(4).toString('hex')}`;
let config: ReturnType<typeof testConfig>;
let temporal: ManagedProcess;
let env: TestWorkflowEnvironment;
let stopWorker: () => Promise<void>;
let receiver: WebhookReceiver;
const dynamo = createDynamoClient({ endpoint: testStack().dynamodbEndpoint, region: testStack().dynamodbRegion });
const accounts = new DynamoAccountStore(dynamo, { tablePrefix: testStack().tablePrefix });
const periods = new DynamoPeriodStore(dynamo, { tablePrefix: testStack().tablePrefix });

beforeAll(async () => {
  quietTemporalRuntime();
  const port = await freePort();
  temporal = await startTemporal({
    dataDir: join(testStack().dataDir, `account-can-${randomBytes(4).toString('hex')}`),
    port,
    httpPort: await freePort(),
    persistent: false,
    dynamicConfig: ['limit.historyCount.suggestContinueAsNew=60'],
  });
  config = testConfig({ TEMPORAL_ADDRESS: `127.0.0.1:${port}`, TEMPORAL_NAMESPACE: 'default', ACCOUNT_WEBHOOK_TIMEOUT_MS: '5000' });
  env = await TestWorkflowEnvironment.createFromExistingServer({ address: config.temporal.address, namespace: config.temporal.namespace });
  stopWorker = await runInProcessWorker({ config, connection: env.nativeConnection, taskQueue });
  receiver = await startWebhookReceiver({ secret: SECRET });
}, 180_000);

afterAll(async () => {
  await stopWorker();
  await env.teardown();
  await stopProcess(temporal);
  await closeAll(receiver, dynamo);
});

describe('account/<tenant> across forced continue-as-new', () => {
  it('delivers each of 150 thresholds exactly once while signals arrive across many runs', async () => {
    // given an account with a webhook and 150 distinct thresholds of the current period, each to be signalled 3 times
    const tenant = parseTenantId(uniqueTenant('n'));
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
    const distinct: WarningRequest[] = [];
    for (let limit = 0; limit < 15; limit += 1)
      for (let percent = 10; percent <= 100; percent += 10) distinct.push({ periodStartMs, limitId: `l${limit}`, percent });
    const signals = [...distinct, ...distinct, ...distinct].sort(() => Math.random() - 0.5);

    // when they arrive in bursts of concurrent signal-with-starts (as pumps of several shards would send them)
    const timings = accountTimings(config);
    for (let start = 0; start < signals.length; start += 30) {
      const burst = signals.slice(start, start + 30);
      await Promise.all(
        Array.from({ length: 6 }, (_, lane) =>
          ensureAccountWorkflow(env.client, { tenant, taskQueue, timings, warnings: burst.filter((_, index) => index % 6 === lane) }),
        ),
      );
      // spread over time, so runs end (history over 60 events) while later bursts arrive
      await sleep(400);
    }
    const handle = env.client.workflow.getHandle(accountWorkflowId(tenant));
    const state: AccountCarry & { inFlight: number } = await waitFor(
      'every delivery processed and the account idle',
      async () => {
        const current = await handle.query(accountStateQuery);
        return receiver.processed.length >= distinct.length && current.queue.length === 0 && current.inFlight === 0 && current;
      },
      { timeoutMs: 120_000, intervalMs: 250 },
    );

    // then every threshold was POSTed once, signed, and recorded delivered; every signal was received
    expect(receiver.processed.length).toBe(distinct.length);
    expect(receiver.requests.length).toBe(distinct.length);
    expect([...receiver.accepted.values()].every((count) => count === 1)).toBe(true);
    expect(receiver.requests.every((request) => request.isSignatureValid)).toBe(true);
    expect(new Set(receiver.processed.map((request) => `${String(request.body['limitId'])}:${String(request.body['percent'])}`)).size).toBe(
      distinct.length,
    );
    expect(state.counters.received).toBe(signals.length);
    expect(state.counters.deliveries).toBe(distinct.length);
    expect(state.counters.runs).toBeGreaterThanOrEqual(3);
    for (const warning of distinct.filter((_, index) => index % 10 === 0)) {
      const record = await periods.getWarning({
        tenant,
        periodStart: new Date(periodStartMs).toISOString(),
        limitId: warning.limitId,
        percent: warning.percent,
      });
      expect(record?.status).toBe('delivered');
    }
    console.log(`[account-continue-as-new] ${signals.length} signals, ${distinct.length} deliveries over ${state.counters.runs} runs`);

    if (shouldCapture) {
      for await (const run of env.client.workflow.list({
        query: `WorkflowId = '${accountWorkflowId(tenant)}' AND ExecutionStatus = 'ContinuedAsNew'`,
      })) {
        const json = historyToJSON(await env.client.workflow.getHandle(run.workflowId, run.runId).fetchHistory());
        if (json.includes('deliverWarning') && json.includes('accountWarnings')) {
          writeFileSync(new URL('../fixtures/histories/account-warnings.json', import.meta.url), json);
          break;
        }
      }
    }
    await handle.terminate('test over');
  }, 240_000);
});
