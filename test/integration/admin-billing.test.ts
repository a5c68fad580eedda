/**
 * Accounts and corrections through the admin API of a real API process: an account put ensures its
 * `account/<tenant>` workflow at once, never reads its webhook secret back, and is refused (with the
 * reason) when its billing period disagrees with the plan of the tenant's keys; a correction posted
 * through the API is appended and counted once (a retry moves nothing), leaves the audit at zero drift
 * before and after the pump, carries the token id as its author, and lands in the audit log. A
 * correction into a finalized period goes through the late-event path.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoPeriodStore } from '../../src/billing/index.js';
import { connectDeciderRedis, shardOf, type DeciderRedis } from '../../src/decider/index.js';
import {
  DynamoLedgerStore,
  MeteringAuditor,
  UsagePump,
  createDynamoClient,
  ledgerTableName,
  parseShard,
} from '../../src/metering/index.js';
import { parseTenantId } from '../../src/shared/index.js';
import { accountWorkflowId } from '../../src/workflows/index.js';
import { allocateShards, tenantInShards } from '../support/allocate.js';
import { startApiServer, storeTenantPlan, type ApiServer } from '../support/api-server.js';
import { slowBucket } from '../support/graphql.js';
import { waitFor } from '../support/poll.js';
import { testConfig } from '../support/stack.js';
import { MONTH, monthStartMs } from '../support/traffic.js';

const config = testConfig();
const SHARDS = 16_384;
const range = allocateShards(16);
const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
const ledger = new DynamoLedgerStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
const periods = new DynamoPeriodStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
let redis: DeciderRedis;
let scratch: string;
let api: ApiServer;
let token: string;
let temporal: Connection;

const PRICE = { currency: 'EUR', baseFeeMicros: 0, includedUnits: 0, tiers: [{ unitPriceMicros: 1 }] };
const iso = (ms: number): string => new Date(ms).toISOString();

async function admin(
  query: string,
  variables: Record<string, unknown> = {},
): Promise<{ data?: Record<string, unknown>; errors?: { message: string; extensions: Record<string, unknown> }[] }> {
  const response = await fetch(`${api.baseUrl}/admin/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as { data?: Record<string, unknown>; errors?: { message: string; extensions: Record<string, unknown> }[] };
}

async function audited(tenant: string, periodStartMs: number): Promise<Record<string, number>> {
  const auditor = new MeteringAuditor(redis, dynamo, { shardCount: SHARDS, tablePrefix: config.dynamodb.tablePrefix });
  const outcome = await auditor.auditTenantPeriod({ tenant, periodStartMs });
  if (outcome.kind !== 'audited') throw new Error(`not audited: ${JSON.stringify(outcome)}`);
  return outcome.report as unknown as Record<string, number>;
}

async function drain(tenant: string): Promise<void> {
  const pump = new UsagePump(redis, ledger, { batchSize: 50 });
  const shard = parseShard(shardOf(parseTenantId(tenant), SHARDS));
  for (let cursor = '0-0'; ;) {
    const result = await pump.pumpBatch({ shard, claimCursor: cursor });
    cursor = result.claimCursor;
    if (result.read === 0) return;
  }
}

const PUT_ACCOUNT = `mutation($input: AccountInput!) { putAccount(input: $input) { tenant hasWebhookSecret webhookUrl billingPeriod { unit anchorDay timeZone } } }`;
const CORRECT = `mutation($input: CorrectionInput!) { postCorrection(input: $input) { eventId periodStart isNew } }`;

beforeAll(async () => {
  redis = await connectDeciderRedis({ url: config.redis.url, commandTimeoutMs: 5_000 });
  temporal = await Connection.connect({ address: config.temporal.address });
  scratch = mkdtempSync(join(tmpdir(), 'admin-billing-'));
  api = await startApiServer({
    scratch,
    env: {
      API_DEMO_SEED: 'true',
      ACCOUNT_ENABLED: 'false',
      DECIDER_SHARDS: String(SHARDS),
      API_ADMIN_TOKEN_FILE: join(scratch, 'admin-token.json'),
    },
  });
  token = (JSON.parse(readFileSync(join(scratch, 'admin-token.json'), 'utf8')) as { token: string }).token;
}, 180_000);

afterAll(async () => {
  await api?.stop();
  await temporal?.close();
  redis?.disconnect();
  dynamo.destroy();
  rmSync(scratch, { recursive: true, force: true });
});

describe('accounts', () => {
  it('ensures the account workflow at once, never reads the secret back, and refuses a period the plan disagrees with', async () => {
    const { tenant } = await storeTenantPlan([slowBucket(1_000)], { tenant: tenantInShards(range, 'acct') });
    // a daily account for a tenant whose key's plan bills monthly: refused, with the reason
    const daily = await admin(PUT_ACCOUNT, {
      input: { tenant, billingPeriod: { unit: 'day', anchorDay: 1, timeZone: 'UTC' }, price: PRICE },
    });
    expect(daily.errors?.[0]?.extensions['code']).toBe('ACCOUNT_INVALID');
    expect(daily.errors?.[0]?.message).toContain('billing');
    // a monthly one is stored, its secret write-only
    const secret = 'whsec-0123456789abcdef';
    const put = await admin(PUT_ACCOUNT, {
      input: {
        tenant,
        billingPeriod: { unit: 'month', anchorDay: 1, timeZone: 'UTC' },
        price: PRICE,
        webhookUrl: 'http://127.0.0.1:9/hook',
        webhookSecret: secret,
      },
    });
    expect(put.errors).toBeUndefined();
    expect(put.data?.['putAccount']).toMatchObject({ tenant, hasWebhookSecret: true, webhookUrl: 'http://127.0.0.1:9/hook' });
    expect(JSON.stringify(put)).not.toContain(secret);
    // and its account workflow is there at once (no worker restart)
    const described = await new Client({ connection: temporal, namespace: config.temporal.namespace }).workflow
      .getHandle(accountWorkflowId(tenant))
      .describe();
    expect(described.status.name).toBe('RUNNING');
    // the audit log has the change, without the secret
    const log = await admin('query($t: String!) { auditLog(target: $t) { items { action after } } }', { t: `account/${tenant}` });
    expect(JSON.stringify(log)).toContain('account.create');
    expect(JSON.stringify(log)).not.toContain(secret);
    expect(api.output()).not.toContain(secret);
  });
});

describe('corrections', () => {
  it('debit, retry and a finalized period: counted once, zero drift, authored by the token id, audited', async () => {
    const { tenant } = await storeTenantPlan([slowBucket(1_000)], { tenant: tenantInShards(range, 'corr') });
    expect((await admin(PUT_ACCOUNT, { input: { tenant, billingPeriod: MONTH, price: PRICE } })).errors).toBeUndefined();
    const currentMs = monthStartMs(Date.now());
    const previousMs = monthStartMs(currentMs - 1);
    await periods.finalize({
      tenant: parseTenantId(tenant),
      periodStart: iso(previousMs),
      nextPeriodStart: iso(currentMs),
      nowMs: Date.now(),
    });
    const whoami = (await admin('{ whoami }')).data?.['whoami'];

    // when a debit, its retry and a correction of the finalized month are posted concurrently
    const input = (id: string, units: number, atMs: number): Record<string, unknown> => ({
      id,
      tenant,
      at: iso(atMs),
      units,
      reason: `ticket ${id}`,
    });
    const replies = await Promise.all([
      admin(CORRECT, { input: input('debit-1', 40, Date.now()) }),
      admin(CORRECT, { input: input('late-1', 25, previousMs + 3_600_000) }),
    ]);
    const retry = await admin(CORRECT, { input: input('debit-1', 40, Date.now()) });
    expect(replies.map((reply) => reply.data?.['postCorrection'])).toEqual([
      { eventId: 'correction.debit-1', periodStart: iso(currentMs), isNew: true },
      { eventId: 'correction.late-1', periodStart: iso(previousMs), isNew: true },
    ]);
    expect(retry.data?.['postCorrection']).toMatchObject({ isNew: false });

    // then zero drift before and after the pump, the late one ledgered into this month
    expect(await audited(tenant, currentMs)).toMatchObject({ admitted: 40, drift: 0 });
    await drain(tenant);
    expect(await audited(tenant, currentMs)).toMatchObject({ admitted: 40, ledgered: 40, inFlight: 0, drift: 0 });
    expect(await audited(tenant, previousMs)).toMatchObject({ admitted: 25, ledgered: 25, inFlight: 0, drift: 0 });
    const late = await dynamo.send(
      new GetItemCommand({
        TableName: ledgerTableName(config.dynamodb.tablePrefix),
        Key: { pk: { S: `tenant#${tenant}#period#${iso(currentMs)}` }, sk: { S: 'entry#correction.late-1' } },
        ConsistentRead: true,
      }),
    );
    expect(late.Item?.['lateOf']?.S).toBe(iso(previousMs));
    expect(late.Item?.['author']?.S).toBe(whoami);
    // and the audit log has each correction once
    const log = await waitFor('the audit entries', async () => {
      const reply = await admin('query($t: String!) { auditLog(target: $t) { items { action target tokenId } } }', {
        t: `correction/${tenant}/`,
      });
      const items = (reply.data?.['auditLog'] as { items: { target: string; tokenId: string }[] }).items;
      return items.length === 2 ? items : undefined;
    });
    expect(log.map((entry) => entry.target).sort()).toEqual([`correction/${tenant}/debit-1`, `correction/${tenant}/late-1`]);
    expect(log.every((entry) => entry.tokenId === whoami)).toBe(true);
  });

  it('refuses bad input with every problem', async () => {
    const reply = await admin(CORRECT, { input: { id: 'Bad Id', tenant: 'nobody-here', at: 'yesterday', units: 0, reason: ' ' } });
    expect(reply.errors?.[0]?.extensions['code']).toBe('INVALID_INPUT');
  });
});
