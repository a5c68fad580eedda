/**
 * The tenant usage API (issue 17, item 2) against the API process as `npm start` runs it and a
 * metering worker process: `usage` reads each limit without spending a unit (what it says remains is
 * what the next metered request then reports, less its cost), projects the period and prices the
 * projection with the account's price; `receipt(id)` resolves the ledger entry behind an
 * `extensions.cost.receipt` (admitted, settled, and a replayed Idempotency-Key request), and another
 * tenant's ids and crafted ids answer exactly like an unknown id; `usageSeries` sums to the ledger's
 * balance; statements download as CSV and JSON.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoAccountStore, DynamoPeriodStore, priceUsage } from '../../src/billing/index.js';
import type { LimitSpec } from '../../src/decider/index.js';
import { DynamoConfigStore, putAccountSettings } from '../../src/graphql/index.js';
import { projectUnits } from '../../src/graphql/usage/usage-service.js';
import { DynamoLedgerStore, createDynamoClient } from '../../src/metering/index.js';
import { parseEventId, parseLimitId, parseTenantId } from '../../src/shared/index.js';
import { allocateShards, tenantInShards } from '../support/allocate.js';
import { storeTenantPlan, type ApiServer } from '../support/api-server.js';
import { startMeteredApi, type MeteredApi } from '../support/metered-api.js';
import { waitFor } from '../support/poll.js';
import { testStack } from '../support/stack.js';
import { MONTH, monthStartMs } from '../support/time.js';

const stack = testStack();
const shards = allocateShards(1);
const taskQueue = `usage-api-${shards.first}`;
const scratch = mkdtempSync(join(tmpdir(), 'usage-api-'));
const dynamo = createDynamoClient({ endpoint: stack.dynamodbEndpoint, region: stack.dynamodbRegion });
const PRICE = {
  currency: 'EUR',
  baseFeeMicros: 5_000_000,
  includedUnits: 100,
  tiers: [{ upToUnits: 1_000, unitPriceMicros: 2_000 }, { unitPriceMicros: 1_000 }],
};
/** 7 units, nothing refunded. */
const COST_7 = '{ products(first: 6) { nodes { id } } }';
/** 101 reserved, 7 charged (the rare category has 3 products): a settlement entry of −94. */
const SETTLED = '{ products(first: 50, category: "c-rare") { edges { node { name } } } }';
const LIMITS: LimitSpec[] = [
  {
    id: parseLimitId('monthly'),
    scope: 'tenant',
    mode: 'hard',
    onDeciderDown: 'closed',
    algorithm: { kind: 'period-quota', limit: 100_000, period: MONTH, thresholdsPercent: [50, 90] },
  },
  {
    id: parseLimitId('minute'),
    scope: 'apiKey',
    mode: 'hard',
    onDeciderDown: 'closed',
    algorithm: { kind: 'fixed-window', limit: 50_000, windowMs: 3_600_000 },
  },
];

let api: ApiServer;
let metered: MeteredApi | undefined;
const a = { tenant: '', key: '' };
const b = { tenant: '', key: '' };

interface GraphQLReply {
  status: number;
  body: {
    data?: Record<string, unknown>;
    errors?: { message: string; extensions: { code: string } }[];
    extensions?: Record<string, unknown>;
  };
}

async function post(
  path: string,
  key: string,
  query: string,
  variables?: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<GraphQLReply> {
  for (let attempt = 1; ; attempt += 1) {
    const reply = await fetch(`${api.baseUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers },
      body: JSON.stringify({ query, ...(variables === undefined ? {} : { variables }) }),
    });
    const text = await reply.text();
    // shed by admission control on a loaded machine (503, Retry-After: 1): retried as a client would
    if (reply.status === 503 && attempt < 10) {
      await new Promise((resolveLater) => setTimeout(resolveLater, 1_000));
      continue;
    }
    return { status: reply.status, body: JSON.parse(text) as GraphQLReply['body'] };
  }
}

const usage = (key: string, query: string, variables?: Record<string, unknown>): Promise<GraphQLReply> =>
  post('/usage/graphql', key, query, variables);

interface CostReport {
  receipt: string | null;
  limits: { id: string; remaining: number }[];
}
const costOf = (reply: GraphQLReply): CostReport => (reply.body.extensions?.['cost'] ?? {}) as CostReport;

const LIMITS_QUERY =
  '{ usage { now limits { id remaining usedUnits limitUnits reachedPercents } period { start end usedUnits includedUnits projectedUnits projectedBill { totalMicros units overageUnits tiers { units amountMicros } } } warnings { limitId percent } } }';

beforeAll(async () => {
  for (const [entry, prefix] of [
    [a, 'ua'],
    [b, 'ub'],
  ] as const) {
    entry.tenant = tenantInShards(shards, prefix);
    entry.key = (await storeTenantPlan(LIMITS, { tenant: entry.tenant })).key;
  }
  await putAccountSettings({
    accounts: new DynamoAccountStore(dynamo, { tablePrefix: stack.tablePrefix }),
    config: new DynamoConfigStore(dynamo, { tablePrefix: stack.tablePrefix }),
    settings: { tenant: parseTenantId(a.tenant), billingPeriod: MONTH, price: PRICE },
    nowMs: Date.now(),
  });
  metered = await startMeteredApi({ scratch, shard: shards.first, taskQueue });
  api = metered.api;
}, 180_000);

afterAll(async () => {
  await metered?.stop();
  dynamo.destroy();
  rmSync(scratch, { recursive: true, force: true });
});

describe('usage', () => {
  it('reads every limit without spending a unit: what remains is what the next metered request reports, less its cost', async () => {
    // given some traffic (concurrent, as a client sends it)
    const sent = await Promise.all(Array.from({ length: 8 }, () => post('/graphql', a.key, COST_7)));
    for (const reply of sent) expect(reply.status).toBe(200);
    // when the tenant reads its usage three times, concurrently
    const reads = await Promise.all([usage(a.key, LIMITS_QUERY), usage(a.key, LIMITS_QUERY), usage(a.key, LIMITS_QUERY)]);
    // then nothing was spent by reading: the three agree
    const views = reads.map((read) => {
      expect(read.status, JSON.stringify(read.body)).toBe(200);
      return (read.body.data?.['usage'] ?? {}) as {
        limits: { id: string; remaining: number; usedUnits: number | null }[];
        period: Record<string, unknown>;
      };
    });
    expect(views[1]!.limits).toEqual(views[0]!.limits);
    expect(views[2]!.limits).toEqual(views[0]!.limits);
    const monthly = views[0]!.limits.find((limit) => limit.id === 'monthly')!;
    expect(monthly.usedUnits).toBe(56);
    // and the next metered request reports exactly the peeked remaining less its 7 units, on every limit
    const next = costOf(await post('/graphql', a.key, COST_7));
    for (const limit of views[0]!.limits) {
      expect(next.limits.find((reported) => reported.id === limit.id)?.remaining).toBe(limit.remaining - 7);
    }
  });

  it('projects the period linearly and prices the projection with the account price (the pricing model, exactly)', async () => {
    const read = await usage(a.key, LIMITS_QUERY);
    const view = read.body.data?.['usage'] as {
      now: string;
      period: {
        start: string;
        end: string;
        usedUnits: number;
        includedUnits: number;
        projectedUnits: number;
        projectedBill: Record<string, unknown>;
      };
    };
    const startMs = Date.parse(view.period.start);
    expect(startMs).toBe(monthStartMs(Date.parse(view.now)));
    expect(view.period.usedUnits).toBeGreaterThanOrEqual(63);
    expect(view.period.includedUnits).toBe(100);
    const expected = projectUnits(view.period.usedUnits, Date.parse(view.now) - startMs, Date.parse(view.period.end) - startMs);
    expect(view.period.projectedUnits).toBe(expected);
    const bill = priceUsage(PRICE, expected);
    expect(view.period.projectedBill).toEqual({
      totalMicros: bill.totalMicros,
      units: bill.units,
      overageUnits: bill.overageUnits,
      tiers: bill.tiers.map((tier) => ({ units: tier.units, amountMicros: tier.amountMicros })),
    });
    // a tenant without an account has no price: no bill, no included units
    const other = (await usage(b.key, LIMITS_QUERY)).body.data?.['usage'] as { period: Record<string, unknown> };
    expect(other.period['projectedBill']).toBeNull();
    expect(other.period['includedUnits']).toBeNull();
  });

  it('refuses anonymous callers and unknown keys as /graphql does', async () => {
    const anonymous = await fetch(`${api.baseUrl}/usage/graphql`, { method: 'POST', body: JSON.stringify({ query: '{ usage { now } }' }) });
    expect(anonymous.status).toBe(401);
    const wrong = await usage('tg_wrongwrongwrongwrongwrongwrongwrongwrong', '{ usage { now } }');
    expect(wrong.status).toBe(401);
  });
});

const RECEIPT_QUERY =
  'query R($id: String!) { receipt(id: $id) { id kind operation units reservedUnits at periodStart settlement { units } } }';

describe('receipts', () => {
  it('resolve for admitted, settled and replayed requests, once ledgered; another tenant, or a crafted id, gets exactly an unknown id', async () => {
    // given an admitted, a settled and a replayed (same Idempotency-Key) request
    const admitted = costOf(await post('/graphql', a.key, COST_7)).receipt as string;
    const settled = costOf(await post('/graphql', a.key, SETTLED)).receipt as string;
    const first = costOf(await post('/graphql', a.key, COST_7, undefined, { 'idempotency-key': `usage-${a.tenant}` })).receipt;
    const replayed = costOf(await post('/graphql', a.key, COST_7, undefined, { 'idempotency-key': `usage-${a.tenant}` })).receipt;
    expect(replayed).toBe(first);
    // when they are in the ledger
    const receiptOf = async (key: string, id: string): Promise<GraphQLReply> => usage(key, RECEIPT_QUERY, { id });
    const resolved = await waitFor(
      'the receipts in the ledger',
      async () => {
        const replies = await Promise.all([admitted, settled, replayed as string].map((id) => receiptOf(a.key, id)));
        const receipts = replies.map((reply) => reply.body.data?.['receipt'] as Record<string, unknown> | null);
        return receipts.every((receipt) => receipt !== null) && (receipts[1]?.['settlement'] ?? null) !== null ? receipts : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 1_000 },
    );
    // then each resolves with what it was charged
    expect(resolved[0]).toMatchObject({
      id: admitted,
      kind: 'usage.reserved.v1',
      operation: 'anonymous',
      units: 7,
      reservedUnits: 7,
      settlement: null,
    });
    expect(resolved[1]).toMatchObject({ id: settled, units: 7, reservedUnits: 101, settlement: { units: -94 } });
    expect(resolved[2]).toMatchObject({ id: replayed, units: 7 });
    expect(resolved[0]?.['periodStart']).toBe(new Date(monthStartMs(Date.now())).toISOString());
    // and the other tenant's key, asking for the same ids, gets exactly what an unknown id gets
    const unknown = await receiptOf(b.key, 'r-never-issued');
    expect(unknown).toEqual({ status: 200, body: { data: { receipt: null } } });
    for (const id of [admitted, settled, `${admitted}.settled`, 'A/../b', 'x'.repeat(300), `${a.tenant}#${admitted}`, '']) {
      expect(await receiptOf(b.key, id)).toEqual(unknown);
    }
    // a crafted id never reaches another tenant for the owner either
    expect(await receiptOf(a.key, `${admitted}.settled`)).toEqual(unknown);
  });
});

describe('usageSeries', () => {
  it('sums, by operation and by limit, hourly and daily, to the ledger balance of the period', async () => {
    const ledger = new DynamoLedgerStore(dynamo, { tablePrefix: stack.tablePrefix });
    const periodStart = new Date(monthStartMs(Date.now())).toISOString();
    // given the ledger holds everything admitted so far (the decider's counter = the balance)
    const admitted = await waitFor(
      'the ledger to hold all usage',
      async () => {
        const used = ((await usage(a.key, '{ usage { period { usedUnits } } }')).body.data?.['usage'] as { period: { usedUnits: number } })
          .period.usedUnits;
        const balance = await ledger.getBalance({ tenant: parseTenantId(a.tenant), periodStart });
        return balance.amount === used ? used : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 1_000 },
    );
    const from = periodStart;
    const to = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth() + 1, 1)).toISOString();
    const query =
      'query S($from: String!, $to: String!, $g: Granularity!, $by: SeriesBy!) { usageSeries(from: $from, to: $to, granularity: $g, by: $by) { start key units } }';
    for (const g of ['HOUR', 'DAY']) {
      const byOperation = await usage(a.key, query, { from, to, g, by: 'OPERATION' });
      const points = byOperation.body.data?.['usageSeries'] as { key: string; units: number }[];
      expect(points.reduce((sum, point) => sum + point.units, 0)).toBe(admitted);
      const byLimit = await usage(a.key, query, { from, to, g, by: 'LIMIT' });
      const limitPoints = byLimit.body.data?.['usageSeries'] as { key: string; units: number }[];
      for (const id of ['monthly', 'minute']) {
        expect(limitPoints.filter((point) => point.key === id).reduce((sum, point) => sum + point.units, 0)).toBe(admitted);
      }
    }
    // the other tenant's series is its own (empty)
    const other = await usage(b.key, query, { from, to, g: 'DAY', by: 'OPERATION' });
    expect(other.body.data?.['usageSeries']).toEqual([]);
    // and a bad range is a clear error
    const bad = await usage(a.key, query, { from: to, to: from, g: 'DAY', by: 'OPERATION' });
    expect(bad.body.errors?.[0]?.extensions.code).toBe('INVALID_INPUT');
  });
});

describe('statements', () => {
  it('lists the closed periods with lines and prices, downloadable as CSV and JSON, for the key tenant only', async () => {
    // given last month closed for tenant A: its entries in the ledger and its statement written as the account workflow does
    const tenant = parseTenantId(a.tenant);
    const thisMonth = monthStartMs(Date.now());
    const periodStart = new Date(monthStartMs(thisMonth - 1)).toISOString();
    const periodEnd = new Date(thisMonth).toISOString();
    const ledger = new DynamoLedgerStore(dynamo, { tablePrefix: stack.tablePrefix });
    await ledger.postEntries([
      {
        tenant,
        periodStart,
        eventId: parseEventId(`s1-${a.tenant}`),
        kind: 'usage.reserved.v1',
        amount: 900,
        operation: 'getA',
        atMs: thisMonth - 60_000,
      },
      {
        tenant,
        periodStart,
        eventId: parseEventId(`s2-${a.tenant}`),
        kind: 'usage.reserved.v1',
        amount: 400,
        operation: 'getB',
        atMs: thisMonth - 60_000,
      },
    ]);
    const periods = new DynamoPeriodStore(dynamo, { tablePrefix: stack.tablePrefix });
    const { statement } = await periods.writeStatement({
      tenant,
      periodStart,
      periodEnd,
      version: 1,
      isFinal: false,
      price: PRICE,
      nowMs: Date.now(),
    });
    expect(statement.price.totalMicros).toBe(priceUsage(PRICE, 1_300).totalMicros);
    // when A lists its statements through GraphQL
    const listed = await usage(
      a.key,
      '{ statements(last: 3) { periodStart periodEnd units lines { operation units } price { totalMicros } } }',
    );
    expect(listed.body.data?.['statements']).toEqual([
      {
        periodStart,
        periodEnd,
        units: 1_300,
        lines: [
          { operation: 'getA', units: 900 },
          { operation: 'getB', units: 400 },
        ],
        price: { totalMicros: statement.price.totalMicros },
      },
    ]);
    // and downloads them
    const download = (key: string, file: string): Promise<Response> =>
      fetch(`${api.baseUrl}/usage/${file}`, { headers: { authorization: `Bearer ${key}` } });
    const csv = await download(a.key, 'statements.csv?last=3');
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toContain('text/csv');
    const rows = (await csv.text()).trim().split('\r\n');
    expect(rows[0]).toBe('period_start,period_end,version,is_final,line,operation,units,currency,amount_micros');
    expect(rows).toContain(`${periodStart},${periodEnd},1,false,usage,getA,900,EUR,`);
    expect(rows).toContain(`${periodStart},${periodEnd},1,false,total,,1300,EUR,${statement.price.totalMicros}`);
    const json = (await (await download(a.key, 'statements.json?last=3')).json()) as { statements: { units: number }[] };
    expect(json.statements.map((entry) => entry.units)).toEqual([1_300]);
    // then the other tenant sees none of them, and a bad argument is a clear 400
    const other = (await (await download(b.key, 'statements.json?last=3')).json()) as { statements: unknown[] };
    expect(other.statements).toEqual([]);
    expect((await download(a.key, 'statements.csv?last=0')).status).toBe(400);
    expect((await download(a.key, 'statements.csv?last=abc')).status).toBe(400);
    expect((await fetch(`${api.baseUrl}/usage/statements.csv`)).status).toBe(401);
  });
});
