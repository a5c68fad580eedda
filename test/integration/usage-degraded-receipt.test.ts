/**
 * Receipts of degraded requests (issue 17): the API as `npm start` runs it, its Redis behind a proxy the test
 * cuts, admits fail-open requests as degraded into its spool and answers each with an `extensions.cost.receipt`;
 * once Redis is back, the spool is replayed into the stream and a real metering worker pumps it into the ledger:
 * then each receipt resolves through the tenant usage API to its ledger entry (amount, operation, period), and
 * another tenant's key reads it exactly like an unknown id.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLimitId } from '../../src/shared/index.js';
import { startApiServer, storeTenantPlan, type ApiServer } from '../support/api-server.js';
import { meteredTenant, type MeteredTenant } from '../support/degraded-usage.js';
import { slowBucket } from '../support/graphql.js';
import { waitFor } from '../support/poll.js';
import { testStack } from '../support/stack.js';
import { startSwitchProxy, type SwitchProxy } from '../support/switch-proxy.js';

const scratch = mkdtempSync(join(tmpdir(), 'tollgate-degraded-receipt-'));
const BODY = JSON.stringify({ query: 'query Catalog { products(first: 6) { nodes { id } } }' });
const RECEIPT_QUERY = 'query R($id: String!) { receipt(id: $id) { id kind operation units reservedUnits periodStart } }';
let proxy: SwitchProxy;
let metered: MeteredTenant;
let api: ApiServer;

beforeAll(async () => {
  proxy = await startSwitchProxy(Number(new URL(testStack().redisUrl).port));
  metered = await meteredTenant([
    {
      id: parseLimitId('burst'),
      scope: 'tenant',
      algorithm: { kind: 'token-bucket', capacity: 1_000_000, refillAmount: 1, refillPeriodMs: 3_600_000 },
      mode: 'hard',
      onDeciderDown: 'open',
    },
  ]);
  const redisUrl = new URL(testStack().redisUrl);
  redisUrl.port = String(proxy.port);
  api = await startApiServer({ scratch, env: { REDIS_URL: redisUrl.toString(), DECIDER_SHARDS: '16384', DECIDER_SPOOL_REPLAY_MS: '500' } });
}, 180_000);

afterAll(async () => {
  await api?.stop();
  await metered?.close();
  await proxy?.close();
  rmSync(scratch, { recursive: true, force: true });
});

async function post(path: string, key: string, body: string): Promise<{ status: number; headers: Headers; json: Record<string, unknown> }> {
  const response = await fetch(`${api.baseUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body,
  });
  return { status: response.status, headers: response.headers, json: (await response.json()) as Record<string, unknown> };
}

describe('receipts of degraded requests', () => {
  it('resolve to their ledger entries once the spool is replayed and pumped', { timeout: 240_000 }, async () => {
    // given Redis unreachable for the API: 5 concurrent requests are admitted fail-open, each with a receipt
    proxy.cut();
    const answers = await Promise.all(Array.from({ length: 5 }, () => post('/graphql', metered.key, BODY)));
    expect(answers.map((answer) => [answer.status, answer.headers.get('tollgate-degraded')])).toEqual(
      Array.from({ length: 5 }, () => [200, 'open']),
    );
    const receipts = answers.map((answer) => (answer.json['extensions'] as { cost?: { receipt?: unknown } }).cost?.receipt);
    expect(receipts.every((id) => typeof id === 'string' && id.length > 0)).toBe(true);
    expect(new Set(receipts).size).toBe(5);

    // when Redis is back: the spool is replayed into the stream and pumped into the ledger
    proxy.restore();
    const resolved = await waitFor(
      'every degraded receipt to resolve',
      async () => {
        const replies = await Promise.all(
          receipts.map((id) => post('/usage/graphql', metered.key, JSON.stringify({ query: RECEIPT_QUERY, variables: { id } }))),
        );
        const found = replies.map(
          (reply) => (reply.json['data'] as { receipt: Record<string, unknown> | null } | undefined)?.receipt ?? null,
        );
        return found.every((receipt) => receipt !== null) && found;
      },
      { timeoutMs: 120_000, intervalMs: 1_000 },
    );

    // then each is the ledger entry of its request: 7 units of Catalog in this month
    for (const [index, receipt] of resolved.entries()) {
      expect(receipt).toMatchObject({ id: receipts[index], operation: 'Catalog', units: 7, reservedUnits: 7 });
    }
    const ledger = await metered.ledger();
    expect(ledger.entrySum).toBe(35);

    // and another tenant reads them exactly like an unknown id
    const other = await storeTenantPlan([slowBucket(1_000)]);
    // (once the API serves the new tenant's plan: until the plan reaches it, every call of that key is refused alike)
    const unknown = await waitFor(
      "the other tenant's plan to be served",
      async () => {
        const reply = await post(
          '/usage/graphql',
          other.key,
          JSON.stringify({ query: RECEIPT_QUERY, variables: { id: 'r-never-issued' } }),
        );
        return reply.status === 200 && reply;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    expect(unknown.json).toEqual({ data: { receipt: null } });
    for (const id of receipts) {
      const reply = await post('/usage/graphql', other.key, JSON.stringify({ query: RECEIPT_QUERY, variables: { id } }));
      expect(reply).toEqual(unknown);
    }
  });
});
