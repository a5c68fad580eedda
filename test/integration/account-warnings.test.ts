/**
 * Warnings end to end under failure: 1 000 parallel decisions through the real
 * Redis decider cross 80 % and 100 % of a period quota; the meter/<shard> pump
 * (in a worker process) ledgers them and hands the crossings to
 * account/<tenant>, which POSTs each warning to a real local webhook receiver.
 * The receiver fails the first 3 attempts, and the worker is SIGKILLed right
 * after the receiver accepted a warning (before its record says delivered),
 * then restarted. Exactly one delivery per threshold is processed by the
 * receiver (which dedupes by Idempotency-Key, like a real one), every request
 * is signed, and the DynamoDB records say delivered.
 */
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisDecider, connectDeciderRedis, periodAt, shardOf, type DeciderRedis, type LimitSpec } from '../../src/decider/index.js';
import { DynamoAccountStore, DynamoPeriodStore } from '../../src/billing/index.js';
import { createDynamoClient, parseShard } from '../../src/metering/index.js';
import { parseEventId, parseKeyId, parseLimitId, systemClock, type TenantId } from '../../src/shared/index.js';
import { accountWorkflowId, ensureMeterWorkflows, meterPumpId } from '../../src/workflows/index.js';
import { closeAll } from '../support/teardown.js';
import { waitFor } from '../support/poll.js';
import { allocateShards, tenantInShards } from '../support/allocate.js';
import { testConfig, testStack } from '../support/stack.js';
import { killWorkerProcesses, startWorkerProcess, writeWorkflowBundle, type WorkerLife } from '../support/worker-process.js';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';
import { MONTH, sleep } from '../support/time.js';

const SHARDS = 16_384;
const range = allocateShards(256);
const SECRET = 'storm-secret-0123456789abcdef';
const config = testConfig();
const stack = testStack();
const taskQueue = `account-warnings-${randomBytes(4).toString('hex')}`;
const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
const accounts = new DynamoAccountStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
const periods = new DynamoPeriodStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
let redis: DeciderRedis;
let temporal: Connection;
let client: Client;
let bundlePath: string;
let receiver: WebhookReceiver;
const workflows: string[] = [];

function startWorker(shouldCrashOnWebhook: boolean): WorkerLife {
  return startWorkerProcess({
    METER_ENABLED: 'false',
    METER_CLAIM_MIN_IDLE_MS: '1000',
    ACCOUNT_WEBHOOK_TIMEOUT_MS: '2000',
    ACCOUNT_WEBHOOK_RETRY_INITIAL_MS: '200',
    ACCOUNT_WEBHOOK_RETRY_MAX_MS: '1000',
    TOLLGATE_TEST_TASK_QUEUE: taskQueue,
    TOLLGATE_TEST_WORKFLOW_BUNDLE: bundlePath,
    ...(shouldCrashOnWebhook ? { TOLLGATE_TEST_CRASH_ON_WEBHOOK: '1' } : {}),
  });
}

/** A fresh tenant whose shard (of 16 384) is in this file's range. */
const tenantInRange = (): TenantId => tenantInShards(range, 's');

beforeAll(async () => {
  redis = await connectDeciderRedis({ url: config.redis.url, commandTimeoutMs: 5_000 });
  temporal = await Connection.connect({ address: config.temporal.address });
  client = new Client({ connection: temporal, namespace: config.temporal.namespace });
  bundlePath = await writeWorkflowBundle(join(stack.dataDir, 'account-warnings'));
  receiver = await startWebhookReceiver({ secret: SECRET, failFirst: 3 });
});

afterAll(async () => {
  killWorkerProcesses();
  for (const id of workflows)
    await client.workflow
      .getHandle(id)
      .terminate('test over')
      .catch(() => undefined);
  await closeAll(temporal, receiver, redis, dynamo);
});

describe('threshold warnings under a storm, webhook failures and a worker crash', () => {
  it('processes exactly one signed delivery per threshold and records it delivered', async () => {
    // given a tenant with a webhook and a 900-unit monthly quota warning at 80 % and 100 %
    const tenant = tenantInRange();
    const shard = parseShard(shardOf(tenant, SHARDS));
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
    const quota: LimitSpec = {
      id: parseLimitId('month'),
      scope: 'tenant',
      algorithm: { kind: 'period-quota', limit: 900, period: MONTH, thresholdsPercent: [80, 100] },
      mode: 'hard',
      onDeciderDown: 'closed',
    };
    const decider = new RedisDecider(redis, { shardCount: SHARDS, clock: systemClock });

    // when 1 000 requests of cost 1 are decided at once
    const decisions = await Promise.all(
      Array.from({ length: 1_000 }, (_, index) =>
        decider.decide({
          tenant,
          keyId: parseKeyId('k1'),
          requestId: parseEventId(`storm-${index}`),
          operation: 'listProducts',
          cost: 1,
          limits: [quota],
          billingPeriod: MONTH,
          policyVersion: 1,
        }),
      ),
    );
    const admitted = decisions.filter((decision) => decision.kind === 'allowed' || decision.kind === 'warned').length;
    const crossings = decisions.flatMap((decision) => (decision.kind === 'warned' ? decision.warnings : []));
    expect(admitted).toBe(900);
    expect(crossings.map((warning) => (warning.kind === 'threshold-crossed' ? warning.percent : 0)).sort((a, b) => a - b)).toEqual([
      80, 100,
    ]);

    // and the pump runs in a worker that dies right after the webhook first accepts a warning, then in a fresh one
    await ensureMeterWorkflows(client, {
      shards: [shard],
      taskQueue,
      settings: { idleDelayMs: 200, iterationsPerRun: 20, activityTimeoutMs: 30_000, heartbeatTimeoutMs: 2_000 },
      workflowTaskTimeoutMs: 2_000,
    });
    workflows.push(meterPumpId(shard), accountWorkflowId(tenant));
    const first = startWorker(true);
    await first.ready;
    const code = await Promise.race([first.exited, sleep(90_000).then(() => 'timeout' as const)]);
    expect(code).not.toBe('timeout');
    const [crashPoint, crashedOn] = first.crashLine();
    expect(crashPoint).toBe('webhook');
    expect(crashedOn).toBeDefined();
    const second = startWorker(false);
    await second.ready;
    const periodStart = new Date(periodAt(MONTH, Date.now()).startMs).toISOString();
    const records = async (): Promise<(string | undefined)[]> =>
      Promise.all([80, 100].map(async (percent) => (await periods.getWarning({ tenant, periodStart, limitId: 'month', percent }))?.status));
    await waitFor(
      'both warnings processed and recorded delivered',
      async () => receiver.processed.length >= 2 && (await records()).every((status) => status === 'delivered'),
      {
        timeoutMs: 90_000,
        intervalMs: 250,
      },
    );

    // then each threshold was processed once, every attempt was signed and carried the threshold's key
    const keys = [`warning-${tenant}-${Date.parse(periodStart)}-month-80`, `warning-${tenant}-${Date.parse(periodStart)}-month-100`];
    expect(receiver.processed.map((request) => request.idempotencyKey).sort()).toEqual([...keys].sort());
    expect(receiver.processed.map((request) => request.body['percent']).sort()).toEqual([100, 80]);
    expect(new Set(receiver.requests.map((request) => request.idempotencyKey))).toEqual(new Set(keys));
    expect(receiver.requests.every((request) => request.isSignatureValid)).toBe(true);
    expect(receiver.failed).toBe(3);
    // the warning accepted just before the crash was POSTed again after it (same key), and deduped by the receiver
    expect(keys).toContain(crashedOn);
    expect(receiver.accepted.get(crashedOn ?? '')).toBeGreaterThanOrEqual(2);
    expect(await records()).toEqual(['delivered', 'delivered']);
    console.log(
      `[account-warnings] ${receiver.requests.length} POSTs (${receiver.failed} failed on purpose), accepted per key: ${JSON.stringify(Object.fromEntries(receiver.accepted))}`,
    );
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  }, 240_000);
});
