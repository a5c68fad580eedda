/**
 * Logs that never leak (issue 15 item 5): the API process and the worker as `npm start` runs them, at debug
 * level, driven through every path that handles account or key data — requests with a valid key (admitted,
 * then denied), with a wrong key and a malformed header carrying one, with a key inside a broken query; the quota warnings those
 * requests cross, delivered by the account workflow to a webhook whose URL carries a token and that refuses
 * every attempt until the workflow gives up; a Redis URL with a password. Then everything both processes
 * printed (their own lines and the Temporal SDK's) is scanned for each secret.
 *
 * Own Temporal, own DynamoDB table prefix and own Redis database: the worker ensures pumps and account
 * workflows for everything it finds, and must find only this file's.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTables } from '../../infra/tables.js';
import { freePort, startTemporal, stopProcess, type ManagedProcess } from '../../infra/services.js';
import { DynamoAccountStore } from '../../src/billing/index.js';
import { DynamoConfigStore } from '../../src/graphql/index.js';
import { createDynamoClient } from '../../src/metering/index.js';
import { parseLimitId, parsePlanId, parseTenantId } from '../../src/shared/index.js';
import { allocateRedisDb } from '../support/allocate.js';
import { startEntryPoint } from '../support/fleet.js';
import { startApiServer, type ApiServer } from '../support/api-server.js';
import { waitFor } from '../support/poll.js';
import { testStack, uniqueTenant } from '../support/stack.js';
import { MONTH } from '../support/time.js';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';

const stack = testStack();
const scratch = mkdtempSync(join(tmpdir(), 'tollgate-redaction-'));
const prefix = `redact${randomBytes(3).toString('hex')}-`;
const tenant = uniqueTenant('redact');
const WEBHOOK_SECRET = `whsec-${randomBytes(12).toString('hex')}`;
const URL_TOKEN = `utok${randomBytes(10).toString('hex')}`;
const REDIS_PASSWORD = `rpw${randomBytes(10).toString('hex')}`;
const WRONG_KEY = `tg_${randomBytes(32).toString('base64url')}`;
/** 2 units each; the quota is 20: the 5th request crosses 50 %, the 10th 100 %, later ones are denied. */
const QUERY = JSON.stringify({ query: '{ products(first: 1) { nodes { id } } }' });
const dynamo = createDynamoClient({ endpoint: stack.dynamodbEndpoint, region: stack.dynamodbRegion });
let temporal: ManagedProcess;
let receiver: WebhookReceiver;
let api: ApiServer | undefined;
let key = '';
let redisUrl = '';
let env: Record<string, string> = {};

beforeAll(async () => {
  const { url } = allocateRedisDb();
  // the same Redis database, reached with a password in its URL (a Redis without one accepts the client)
  redisUrl = url.replace('redis://', `redis://default:${REDIS_PASSWORD}@`);
  const port = await freePort();
  temporal = await startTemporal({ dataDir: join(scratch, 'temporal'), port, httpPort: await freePort(), persistent: false });
  await ensureTables(dynamo, prefix);
  receiver = await startWebhookReceiver({ secret: WEBHOOK_SECRET, failFirst: 1_000_000 });
  const config = new DynamoConfigStore(dynamo, { tablePrefix: prefix });
  const planId = `p-${tenant}`;
  await config.putPlan(
    {
      id: parsePlanId(planId),
      version: 1,
      limits: [
        {
          id: parseLimitId('month'),
          scope: 'tenant',
          algorithm: { kind: 'period-quota', limit: 20, period: MONTH, thresholdsPercent: [50, 100] },
          mode: 'hard',
          onDeciderDown: 'closed',
        },
      ],
      billingPeriod: MONTH,
      maxCostPerOperation: 1_000,
    },
    Date.now(),
  );
  ({ key } = await config.addKey({ tenant, keyId: 'k1', planId, nowMs: Date.now() }));
  await new DynamoAccountStore(dynamo, { tablePrefix: prefix }).put(
    {
      tenant: parseTenantId(tenant),
      billingPeriod: MONTH,
      webhookUrl: `${receiver.url}?token=${URL_TOKEN}`,
      webhookSecret: WEBHOOK_SECRET,
      price: { currency: 'EUR', baseFeeMicros: 0, includedUnits: 0, tiers: [{ unitPriceMicros: 1 }] },
    },
    Date.now(),
  );
  env = {
    REDIS_URL: redisUrl,
    TEMPORAL_ADDRESS: `127.0.0.1:${port}`,
    TEMPORAL_NAMESPACE: 'default',
    DYNAMODB_TABLE_PREFIX: prefix,
    DECIDER_SHARDS: '4',
    LOG_LEVEL: 'debug',
  };
}, 180_000);

afterAll(async () => {
  await api?.stop();
  await receiver.close();
  await stopProcess(temporal);
  dynamo.destroy();
  rmSync(scratch, { recursive: true, force: true });
});

/** The worker entry point with the account workflows on and fast webhook retries (the audit and sweep stay off). */
function startWorker(): { output: () => string; stop: () => Promise<void> } {
  const worker = startEntryPoint({
    DYNAMODB_ENDPOINT: stack.dynamodbEndpoint,
    DYNAMODB_REGION: stack.dynamodbRegion,
    ...env,
    TEMPORAL_TASK_QUEUE: 'redaction',
    METER_IDLE_DELAY_MS: '100',
    METER_IDLE_WAIT_MS: '1000',
    ACCOUNT_ENABLED: 'true',
    ACCOUNT_WEBHOOK_TIMEOUT_MS: '2000',
    ACCOUNT_WEBHOOK_RETRY_INITIAL_MS: '100',
    ACCOUNT_WEBHOOK_RETRY_MAX_MS: '200',
    ACCOUNT_WEBHOOK_MAX_ATTEMPTS: '2',
    WORKER_METRICS_PORT: '0',
  });
  return {
    output: worker.output,
    stop: async () => {
      if (worker.child.exitCode === null) worker.child.kill('SIGTERM');
      await worker.exited;
    },
  };
}

async function post(headers: Record<string, string>, body = QUERY): Promise<number> {
  const response = await fetch(`${(api as ApiServer).baseUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  await response.arrayBuffer();
  return response.status;
}

describe('logs never leak a secret', () => {
  it('keeps API keys, webhook secrets, URL tokens and the Redis password out of everything the API and the worker print', async () => {
    const worker = startWorker();
    try {
      api = await startApiServer({ scratch, env: { ...env, JOBS_TASK_QUEUE: 'redaction-jobs' } });
      // when requests arrive with the right key (admitted until the quota is spent, then denied)
      const statuses: number[] = [];
      for (let i = 0; i < 12; i += 1) statuses.push(await post({ authorization: `Bearer ${key}` }));
      expect(statuses.filter((status) => status === 200)).toHaveLength(10);
      expect(statuses.filter((status) => status === 429)).toHaveLength(2);
      // and with a wrong key, a malformed Authorization header carrying one, and a key pasted into a broken query
      expect(await post({ authorization: `Bearer ${WRONG_KEY}` })).toBe(401);
      expect(await post({ authorization: `Token ${WRONG_KEY}` })).toBe(401);
      expect(
        await post(
          { authorization: `Bearer ${key}`, accept: 'application/graphql-response+json' },
          JSON.stringify({ query: `{ products(first: ${key}) }` }),
        ),
      ).toBe(400);
      // then the two warnings reach the account workflow, whose webhook refuses every attempt until it gives up
      await waitFor('both warnings given up', () => (worker.output().match(/warning delivery given up/g) ?? []).length >= 2, {
        timeoutMs: 120_000,
        intervalMs: 500,
      });
      expect(receiver.failed).toBeGreaterThanOrEqual(4);
    } finally {
      await worker.stop();
      await api?.stop();
    }
    const printed = { api: api.output(), worker: worker.output() };
    // the paths ran and were logged (debug level: the API's per-request decisions, the worker's Temporal lines)
    expect(printed.api).toContain(tenant);
    expect(printed.worker).toContain('"component":"temporal"');
    for (const [name, text] of Object.entries(printed)) {
      for (const [what, secret] of Object.entries({ key, WRONG_KEY, WEBHOOK_SECRET, URL_TOKEN, REDIS_PASSWORD })) {
        expect(text.includes(secret), `${name} printed ${what}`).toBe(false);
      }
    }
  }, 240_000);
});
