/**
 * The dashboard's tenant view (issue 18) in a real browser (Debian's Chromium, headless) against the API process as
 * `npm start` runs it and a meter worker: sign-in exchanges the key for an HttpOnly SameSite=Strict cookie; every card,
 * the chart, the bill and the statements show what the usage API answers for the same moment; values refresh by
 * themselves; a CSV download equals the statement. Security: CSP and framing headers, no CSP violation, no request
 * leaves the API's origin, CSRF on every cookie POST, and tenant A's session never reaches tenant B's data.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoAccountStore, DynamoPeriodStore } from '../../src/billing/index.js';
import type { LimitSpec } from '../../src/decider/index.js';
import { DynamoConfigStore, putAccountSettings } from '../../src/graphql/index.js';
import { DynamoJobStore, deferredJobId } from '../../src/jobs/index.js';
import { DynamoLedgerStore, createDynamoClient } from '../../src/metering/index.js';
import { parseEventId, parseLimitId, parseTenantId } from '../../src/shared/index.js';
import { allocateShards, tenantInShards } from '../support/allocate.js';
import { storeTenantPlan, type ApiServer } from '../support/api-server.js';
import { ARTIFACTS, cspViolations, ensureDashboardBuilt, openBrowser, type DashboardBrowser } from '../support/browser.js';
import { startMeteredApi, type MeteredApi } from '../support/metered-api.js';
import { waitFor } from '../support/poll.js';
import { testStack } from '../support/stack.js';
import { MONTH, monthStartMs } from '../support/time.js';

const stack = testStack();
const shards = allocateShards(1);
const scratch = mkdtempSync(join(tmpdir(), 'dashboard-tenant-'));
const dynamo = createDynamoClient({ endpoint: stack.dynamodbEndpoint, region: stack.dynamodbRegion });
const PRICE = {
  currency: 'EUR',
  baseFeeMicros: 5_000_000,
  includedUnits: 50,
  tiers: [{ upToUnits: 1_000, unitPriceMicros: 2_000 }, { unitPriceMicros: 1_000 }],
};
const HOSTILE = '<img src=x onerror=alert(1)>';
/** 7 units. */
const COST_7 = '{ products(first: 6) { nodes { id } } }';
const LIMITS: LimitSpec[] = [
  {
    id: parseLimitId('monthly'),
    scope: 'tenant',
    mode: 'hard',
    onDeciderDown: 'closed',
    algorithm: { kind: 'period-quota', limit: 200, period: MONTH, thresholdsPercent: [50, 90] },
  },
  {
    id: parseLimitId('soft-month'),
    scope: 'tenant',
    mode: 'soft',
    onDeciderDown: 'open',
    algorithm: { kind: 'period-quota', limit: 50, period: MONTH, thresholdsPercent: [80, 100] },
  },
  {
    id: parseLimitId('hourly'),
    scope: 'apiKey',
    mode: 'hard',
    onDeciderDown: 'closed',
    algorithm: { kind: 'fixed-window', limit: 5_000, windowMs: 3_600_000 },
  },
];
const USAGE = `{ usage { limits { id usedUnits limitUnits remaining reachedPercents } period { usedUnits projectedUnits projectedBill { totalMicros overageUnits includedUnits } } } }`;

let metered: MeteredApi | undefined;
let api: ApiServer;
let web: DashboardBrowser;
const a = { tenant: '', key: '' };
/** Every receipt A's requests were given. */
const receiptsOfA: string[] = [];
/** A's and B's deferred jobs (recorded as a submit leaves them), oldest first. */
const jobsOfA: string[] = [];
const jobsOfB: string[] = [];
const b = { tenant: '', key: '' };

async function usageApi<T>(key: string, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const response = await fetch(`${api.baseUrl}/usage/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data: T };
  expect(response.status, JSON.stringify(body)).toBe(200);
  return body.data;
}

async function spend(key: string, count: number): Promise<string[]> {
  const replies = await Promise.all(
    Array.from({ length: count }, () =>
      fetch(`${api.baseUrl}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify({ query: COST_7 }),
      }),
    ),
  );
  return Promise.all(
    replies.map(async (reply) => {
      expect(reply.status).toBe(200);
      return ((await reply.json()) as { extensions: { cost: { receipt: string } } }).extensions.cost.receipt;
    }),
  );
}

const fmt = (units: number): string => Math.round(units).toLocaleString('en-US');

/** A fetch from inside the page (its cookie, its origin), with the session's CSRF token unless `csrf` is false. */
function pageFetch(path: string, init: { method?: string; body?: string; csrf?: boolean } = {}): Promise<{ status: number; text: string }> {
  return web.page.evaluate(
    async ({ path: target, method, body, csrf }) => {
      const session = (await (await fetch('/dashboard/session')).json()) as { csrf: string };
      const response = await fetch(target, {
        method,
        headers: { 'content-type': 'application/json', ...(csrf ? { 'x-csrf-token': session.csrf } : {}) },
        ...(body === undefined ? {} : { body }),
      });
      return { status: response.status, text: await response.text() };
    },
    { path, method: init.method ?? 'GET', body: init.body, csrf: init.csrf ?? true },
  );
}

beforeAll(async () => {
  ensureDashboardBuilt();
  a.tenant = tenantInShards(shards, 'da');
  b.tenant = tenantInShards(shards, 'db');
  a.key = (await storeTenantPlan(LIMITS, { tenant: a.tenant })).key;
  b.key = (await storeTenantPlan(LIMITS, { tenant: b.tenant })).key;
  await putAccountSettings({
    accounts: new DynamoAccountStore(dynamo, { tablePrefix: stack.tablePrefix }),
    config: new DynamoConfigStore(dynamo, { tablePrefix: stack.tablePrefix }),
    settings: { tenant: parseTenantId(a.tenant), billingPeriod: MONTH, price: PRICE },
    nowMs: Date.now(),
  });
  metered = await startMeteredApi({ scratch, shard: shards.first, taskQueue: `dashboard-tenant-${shards.first}` });
  api = metered.api;
  web = await openBrowser();
}, 180_000);

afterAll(async () => {
  await web?.close();
  await metered?.stop();
  dynamo.destroy();
  rmSync(scratch, { recursive: true, force: true });
});

describe('the dashboard page', () => {
  it('is served with its security headers; hashed assets are immutable, the page is not cached', async () => {
    const page = await fetch(`${api.baseUrl}/dashboard`);
    expect(page.status).toBe(200);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('cache-control')).toBe('no-cache');
    const html = await page.text();
    expect(html).not.toMatch(/<script>|<style|style=/);
    const asset = /src="(\/dashboard\/assets\/[^"]+\.js)"/.exec(html)?.[1] ?? '';
    const js = await fetch(`${api.baseUrl}${asset}`, { headers: { 'accept-encoding': 'gzip' } });
    expect(js.status).toBe(200);
    expect(js.headers.get('cache-control')).toContain('immutable');
    expect(js.headers.get('content-encoding')).toBe('gzip');
    expect((await fetch(`${api.baseUrl}/dashboard/assets/nope.js`)).status).toBe(404);
  });
});

describe('the tenant view', () => {
  it('signs in with the API key into an HttpOnly SameSite=Strict cookie; the key is kept nowhere in the browser', async () => {
    receiptsOfA.push(...(await spend(a.key, 15)));
    const { page } = web;
    await page.goto(`${api.baseUrl}/dashboard`);
    await page.getByLabel('API key (tenant) or admin token (operator)').fill(a.key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('limit-card').first().waitFor();
    expect(await page.getByTestId('who').textContent()).toBe(a.tenant);
    const cookies = await web.context.cookies();
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatchObject({ name: 'tg_session', httpOnly: true, sameSite: 'Strict', secure: false, path: '/' });
    expect(cookies[0]?.value).not.toContain(a.key);
    const stored = await page.evaluate(() =>
      JSON.stringify([document.cookie, { ...localStorage }, { ...sessionStorage }, document.documentElement.outerHTML]),
    );
    expect(stored).not.toContain(a.key);
    expect(stored).not.toContain(cookies[0]?.value);
  });

  it('shows on every card, the period and the bill what the usage API answers for the same moment', async () => {
    const { page } = web;
    const data = await usageApi<{
      usage: {
        limits: { id: string; usedUnits: number | null; limitUnits: number | null; remaining: number; reachedPercents: number[] }[];
        period: {
          usedUnits: number;
          projectedUnits: number;
          projectedBill: { totalMicros: number; overageUnits: number; includedUnits: number };
        };
      };
    }>(a.key, USAGE);
    expect(data.usage.period.usedUnits).toBe(105);
    await page.reload();
    for (const limit of data.usage.limits) {
      const card = page.locator(`[data-testid=limit-card][data-limit="${limit.id}"]`);
      if (limit.usedUnits === null) expect(await card.locator('[data-field=remaining]').textContent()).toBe(fmt(limit.remaining));
      else {
        expect(await card.locator('[data-field=used]').textContent()).toBe(fmt(limit.usedUnits));
        expect(await card.locator('[data-field=limit]').textContent()).toBe(fmt(limit.limitUnits ?? 0));
      }
      for (const pct of limit.reachedPercents) expect(await card.locator(`[data-threshold="${pct}"]`).textContent()).toContain('reached');
    }
    // 105 of the soft 50: overage shown; 105 of 200 is over the 50 % threshold (amber)
    expect(await page.locator('[data-limit="soft-month"]').textContent()).toContain('overage 55 units');
    expect(await page.locator('[data-limit="monthly"]').getAttribute('class')).toContain('level-amber');
    expect(await page.locator('[data-field=period-used]').textContent()).toBe(fmt(data.usage.period.usedUnits));
    expect(await page.locator('[data-field=projected-units]').textContent()).toBe(fmt(data.usage.period.projectedUnits));
    const bill = data.usage.period.projectedBill;
    expect(await page.locator('[data-field=total]').textContent()).toBe(`${(bill.totalMicros / 1_000_000).toFixed(2)} EUR`);
    expect(await page.locator('[data-field=overage]').textContent()).toBe(fmt(bill.overageUnits));
    await web.screenshot('tenant-cards');
  });

  it('refreshes by itself: new traffic shows on the card without a reload', async () => {
    const { page } = web;
    const before = await page.locator('[data-limit="monthly"] [data-field=used]').textContent();
    receiptsOfA.push(...(await spend(a.key, 2)));
    await page
      .locator('[data-limit="monthly"] [data-field=used]')
      .filter({ hasText: fmt(119) })
      .waitFor({ timeout: 20_000 });
    expect(before).toBe(fmt(105));
  });

  it('draws the usage chart (a non-empty canvas) with the units the series API answers for the same range', async () => {
    const { page } = web;
    const hour = 3_600_000;
    const now = Date.now();
    const range = {
      from: new Date(Math.floor(now / hour) * hour - 23 * hour).toISOString(),
      to: new Date(Math.ceil(now / hour) * hour).toISOString(),
    };
    const query =
      'query($from: String!, $to: String!) { usageSeries(from: $from, to: $to, granularity: HOUR, by: OPERATION) { start key units } }';
    // the ledger has every unit sent (the pump moves them within seconds)
    await waitFor('the ledger to hold the 119 units', async () => {
      const series = await usageApi<{ usageSeries: { units: number }[] }>(a.key, query, range);
      return series.usageSeries.reduce((sum, point) => sum + point.units, 0) === 119;
    });
    await page.getByTestId('series-total').filter({ hasText: '119 units in range' }).waitFor({ timeout: 20_000 });
    const canvas = page.locator('[data-testid=usage-chart] canvas').first();
    await canvas.waitFor();
    const painted = await canvas.evaluate((element) => {
      const canvasElement = element as HTMLCanvasElement;
      const pixels =
        canvasElement.getContext('2d')?.getImageData(0, 0, canvasElement.width, canvasElement.height).data ?? new Uint8ClampedArray();
      let count = 0;
      for (let i = 3; i < pixels.length; i += 4) if ((pixels[i] ?? 0) > 0) count += 1;
      return count;
    });
    expect(painted).toBeGreaterThan(100);
    await web.screenshot('tenant-chart');
  });
});

describe('statements', () => {
  it('lists a closed period and downloads a CSV equal to the statement the API serves', async () => {
    // given last month closed for A: two ledger entries and its statement, written as the account workflow does
    const tenant = parseTenantId(a.tenant);
    const thisMonth = monthStartMs(Date.now());
    const periodStart = new Date(monthStartMs(thisMonth - 1)).toISOString();
    const periodEnd = new Date(thisMonth).toISOString();
    const entry = (id: string, amount: number, operation: string) => ({
      tenant,
      periodStart,
      eventId: parseEventId(`${id}-${a.tenant}`),
      kind: 'usage.reserved.v1' as const,
      amount,
      operation,
      atMs: thisMonth - 60_000,
    });
    await new DynamoLedgerStore(dynamo, { tablePrefix: stack.tablePrefix }).postEntries([
      entry('d1', 900, 'getA'),
      entry('d2', 400, 'getB'),
    ]);
    await new DynamoPeriodStore(dynamo, { tablePrefix: stack.tablePrefix }).writeStatement({
      tenant,
      periodStart,
      periodEnd,
      version: 1,
      isFinal: true,
      price: PRICE,
      nowMs: Date.now(),
    });
    const { page } = web;
    await page.reload();
    await page.getByTestId('statement-row').first().waitFor();
    expect(await page.getByTestId('statement-row').first().textContent()).toContain(fmt(1_300));
    // when the CSV is downloaded through the page
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('download-csv').click()]);
    const file = join(scratch, 'statements.csv');
    await download.saveAs(file);
    // then it is the statement the API serves to A's key, byte for byte
    const direct = await fetch(`${api.baseUrl}/usage/statements.csv?last=12`, { headers: { authorization: `Bearer ${a.key}` } });
    const csv = await direct.text();
    expect(csv).toContain(`${periodStart},${periodEnd},1,true,usage,getA,900,EUR,`);
    expect(readFileSync(file, 'utf8')).toBe(csv);
    await web.screenshot('tenant-statements');
  });
});

type ReceiptsReply = { receipts: { items: { id: string; at: string; units: number }[]; cursor: string | null } };
const RECEIPTS =
  'query($from: String!, $to: String!, $n: Int, $after: String) { receipts(from: $from, to: $to, first: $n, after: $after) { items { id at units } cursor } }';
type JobsReply = { jobs: { items: { id: string; status: string; resultSummary: string | null }[]; cursor: string | null } };
const JOBS = 'query($n: Int, $after: String) { jobs(first: $n, after: $after) { items { id status resultSummary } cursor } }';

async function allPages<T extends { items: { id: string }[]; cursor: string | null }>(
  read: (after: string | null) => Promise<T>,
): Promise<string[]> {
  const ids: string[] = [];
  let after: string | null = null;
  for (let page = 0; page < 50; page += 1) {
    const reply: T = await read(after);
    ids.push(...reply.items.map((item) => item.id));
    after = reply.cursor;
    if (after === null) return ids;
  }
  throw new Error('more than 50 pages');
}

describe('receipts by time and deferred jobs', () => {
  it("lists A's receipts of a time range, newest first, every page, exactly the requests it sent; the page shows the API's", async () => {
    const range = { from: new Date(Date.now() - 3_600_000).toISOString(), to: new Date(Date.now() + 60_000).toISOString() };
    const read = (after: string | null): Promise<ReceiptsReply['receipts']> =>
      usageApi<ReceiptsReply>(a.key, RECEIPTS, { ...range, n: 4, after }).then((data) => data.receipts);
    const ids = await waitFor('every receipt of A in the range', async () => {
      const all = await allPages(read);
      return all.filter((id) => id.startsWith('r-')).length === receiptsOfA.length && all;
    });
    expect(ids.filter((id) => id.startsWith('r-')).sort()).toEqual([...receiptsOfA].sort());
    expect(new Set(ids).size).toBe(ids.length);
    const first = await usageApi<ReceiptsReply>(a.key, RECEIPTS, { ...range, n: 100 });
    const times = first.receipts.items.map((item) => Date.parse(item.at));
    expect(times).toEqual([...times].sort((x, y) => y - x));
    // a cursor this API did not hand out, an inverted range: INVALID_INPUT
    for (const variables of [
      { ...range, after: 'not-a-cursor' },
      { from: range.to, to: range.from },
    ]) {
      const reply = await fetch(`${api.baseUrl}/usage/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${a.key}` },
        body: JSON.stringify({ query: RECEIPTS, variables }),
      });
      // (the usage API's convention: a field's bad argument is a GraphQL error with its code, data null, HTTP 200)
      expect(reply.status).toBe(200);
      expect(((await reply.json()) as { errors: { extensions: { code: string } }[] }).errors[0]?.extensions.code).toBe('INVALID_INPUT');
    }
    const { page } = web;
    await page.getByRole('button', { name: 'Search by time' }).click();
    const results = page.getByTestId('receipt-results');
    await results.waitFor();
    const used = { from: (await results.getAttribute('data-from')) ?? '', to: (await results.getAttribute('data-to')) ?? '' };
    const api20 = await usageApi<ReceiptsReply>(a.key, RECEIPTS, { ...used, n: 20 });
    const shown = await page
      .getByTestId('receipt-row')
      .evaluateAll((rows) => rows.map((row) => [row.getAttribute('data-receipt'), row.querySelector('[data-field=units]')?.textContent]));
    expect(shown).toEqual(api20.receipts.items.map((item) => [item.id, fmt(item.units)]));
    expect(shown.length).toBeGreaterThanOrEqual(17);
    await page.getByTestId('receipts').screenshot({ path: join(ARTIFACTS, 'tenant-receipts-by-time.png') });
  });

  it("lists A's deferred jobs newest first, page by page, with none of B's; the page shows what the API answers", async () => {
    const store = new DynamoJobStore(dynamo, { tablePrefix: stack.tablePrefix });
    const record = async (tenant: string, name: string, ageMs: number): Promise<string> => {
      const jobId = deferredJobId(parseTenantId(tenant), parseEventId(name));
      const createdAtMs = Date.now() - ageMs;
      await store.create({
        jobId,
        tenant: parseTenantId(tenant),
        keyId: 'k1',
        requestId: name,
        operationName: 'Export',
        cost: 3,
        createdAtMs,
        expiresAtMs: createdAtMs + 3_600_000,
        maxOpenJobs: 1_000,
      });
      return jobId;
    };
    for (let i = 0; i < 12; i += 1) jobsOfA.push(await record(a.tenant, `i-job-a-${i}`, (12 - i) * 1_000));
    for (let i = 0; i < 2; i += 1) jobsOfB.push(await record(b.tenant, `i-job-b-${i}`, (2 - i) * 1_000 - 500));
    // two of A's finished: one with a result (hostile markup, rendered as text), one failed
    const done = jobsOfA[11] ?? '';
    await store.storeResult({
      tenant: parseTenantId(a.tenant),
      jobId: done,
      result: { data: { note: HOSTILE } },
      actualCost: 2,
      nowMs: Date.now(),
    });
    await store.finish({ tenant: parseTenantId(a.tenant), jobId: done, status: 'succeeded', errorCode: null, nowMs: Date.now() });
    await store.finish({
      tenant: parseTenantId(a.tenant),
      jobId: jobsOfA[10] ?? '',
      status: 'failed',
      errorCode: 'JOB_FAILED',
      nowMs: Date.now(),
    });
    const read = (after: string | null): Promise<JobsReply['jobs']> =>
      usageApi<JobsReply>(a.key, JOBS, { n: 5, after }).then((data) => data.jobs);
    const ids = await waitFor('the 12 jobs of A listed', async () => ((all) => all.length === 12 && all)(await allPages(read)));
    expect(ids).toEqual([...jobsOfA].reverse());
    // B's key sees B's two only; a cursor naming B's job gives A only A's older ones; a made-up cursor is INVALID_INPUT
    expect(await allPages((after) => usageApi<JobsReply>(b.key, JOBS, { n: 5, after }).then((data) => data.jobs))).toEqual(
      [...jobsOfB].reverse(),
    );
    const cursorAtB = Buffer.from(JSON.stringify([Date.now() - 1_500, jobsOfB[1]])).toString('base64url');
    const afterB = await allPages((after) =>
      usageApi<JobsReply>(a.key, JOBS, { n: 5, after: after ?? cursorAtB }).then((data) => data.jobs),
    );
    expect(afterB.every((id) => jobsOfA.includes(id))).toBe(true);
    const crafted = await fetch(`${api.baseUrl}/usage/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${a.key}` },
      body: JSON.stringify({ query: JOBS, variables: { after: 'eyJ0ZW5hbnQiOiJ4In0' } }),
    });
    expect(((await crafted.json()) as { errors: { extensions: { code: string } }[] }).errors[0]?.extensions.code).toBe('INVALID_INPUT');
    const { page } = web;
    await page.reload();
    const rows = page.getByTestId('job-row');
    await rows.first().waitFor();
    const shownRows = async (): Promise<(string | null)[][]> =>
      rows.evaluateAll((elements) =>
        elements.map((row) => [row.getAttribute('data-job'), row.querySelector('[data-field=status]')?.textContent ?? null]),
      );
    const first10 = await usageApi<JobsReply>(a.key, JOBS, { n: 10 });
    expect(await shownRows()).toEqual(first10.jobs.items.map((job) => [job.id, job.status]));
    expect(await page.locator(`[data-job="${done}"] [data-field=result]`).textContent()).toContain(HOSTILE);
    expect(await page.locator('img').count()).toBe(0);
    await page.getByTestId('jobs').getByRole('button', { name: 'Older' }).click();
    const second = await usageApi<JobsReply>(a.key, JOBS, { n: 10, after: first10.jobs.cursor });
    await page.locator(`[data-testid=job-row][data-job="${second.jobs.items[0]?.id ?? ''}"]`).waitFor();
    expect(await shownRows()).toEqual(second.jobs.items.map((job) => [job.id, job.status]));
    await page.getByTestId('jobs').screenshot({ path: join(ARTIFACTS, 'tenant-jobs.png') });
  });
});

describe('tenant isolation and CSRF', () => {
  it("never reaches tenant B's data from A's session: crafted URLs, B's receipt id, a tenant argument, the admin API", async () => {
    const [receiptOfB] = await spend(b.key, 1);
    await waitFor("B's receipt in the ledger", async () => {
      const data = await usageApi<{ receipt: { id: string } | null }>(b.key, 'query($id: String!) { receipt(id: $id) { id } }', {
        id: receiptOfB,
      });
      return data.receipt !== null;
    });
    const receipt = await pageFetch('/usage/graphql', {
      method: 'POST',
      body: JSON.stringify({ query: `{ receipt(id: ${JSON.stringify(receiptOfB)}) { id } }` }),
    });
    expect(receipt).toEqual({ status: 200, text: JSON.stringify({ data: { receipt: null } }) });
    const lists = await pageFetch('/usage/graphql', {
      method: 'POST',
      body: JSON.stringify({
        query: `{ jobs(first: 100) { items { id } } receipts(from: "${new Date(Date.now() - 86_400_000).toISOString()}", to: "${new Date(Date.now() + 60_000).toISOString()}", first: 100) { items { id } } }`,
      }),
    });
    expect(lists.status).toBe(200);
    for (const id of [receiptOfB ?? 'none', ...jobsOfB]) expect(lists.text).not.toContain(id);
    const withArgument = await pageFetch('/usage/graphql', {
      method: 'POST',
      body: JSON.stringify({ query: `{ usage(tenant: "${b.tenant}") { now } }` }),
    });
    expect(withArgument.status).toBe(400);
    const own = await pageFetch('/usage/statements.json?last=12');
    for (const crafted of [`/usage/statements.json?last=12&tenant=${b.tenant}`, `/usage/statements.json?last=12&tenant[]=${b.tenant}`]) {
      expect(await pageFetch(crafted)).toEqual(own);
    }
    const usageSeen = await pageFetch('/usage/graphql', {
      method: 'POST',
      body: JSON.stringify({ query: '{ usage { period { usedUnits } } }' }),
    });
    expect(JSON.parse(usageSeen.text)).toEqual({ data: { usage: { period: { usedUnits: 119 } } } });
    const admin = await pageFetch('/admin/graphql', { method: 'POST', body: JSON.stringify({ query: '{ tenants { items { id } } }' }) });
    expect(admin.status).toBe(401);
  });

  it('refuses a cookie POST without the CSRF token or from another origin, and a sign-in from another origin', async () => {
    const withoutToken = await pageFetch('/usage/graphql', {
      method: 'POST',
      body: JSON.stringify({ query: '{ usage { now } }' }),
      csrf: false,
    });
    expect(withoutToken.status).toBe(403);
    expect(withoutToken.text).toContain('CSRF_REJECTED');
    const cookie = (await web.context.cookies()).map((entry) => `${entry.name}=${entry.value}`).join('; ');
    const session = (await (await fetch(`${api.baseUrl}/dashboard/session`, { headers: { cookie } })).json()) as { csrf: string };
    const foreign = await fetch(`${api.baseUrl}/usage/graphql`, {
      method: 'POST',
      headers: { cookie, 'x-csrf-token': session.csrf, origin: 'http://evil.example', 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ usage { now } }' }),
    });
    expect(foreign.status).toBe(403);
    const sameOrigin = await fetch(`${api.baseUrl}/usage/graphql`, {
      method: 'POST',
      headers: { cookie, 'x-csrf-token': session.csrf, origin: api.baseUrl, 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ usage { now } }' }),
    });
    expect(sameOrigin.status).toBe(200);
    const signIn = await fetch(`${api.baseUrl}/dashboard/session`, {
      method: 'POST',
      headers: { origin: 'http://evil.example', 'content-type': 'application/json' },
      body: JSON.stringify({ credential: a.key }),
    });
    expect(signIn.status).toBe(403);
    expect(signIn.headers.get('set-cookie')).toBeNull();
  });

  it('ends a session when its key is revoked', async () => {
    const config = new DynamoConfigStore(dynamo, { tablePrefix: stack.tablePrefix });
    const { key } = await config.addKey({ tenant: a.tenant, keyId: 'k2', planId: `p-${a.tenant}`, nowMs: Date.now() });
    // (X-Forwarded-Proto from a peer that is no trusted proxy does not make the cookie Secure: it would then never come back over http)
    const signIn = await fetch(`${api.baseUrl}/dashboard/session`, {
      method: 'POST',
      headers: { origin: api.baseUrl, 'content-type': 'application/json', 'x-forwarded-proto': 'https' },
      body: JSON.stringify({ credential: key }),
    });
    expect(signIn.status).toBe(200);
    expect(signIn.headers.get('set-cookie')).toMatch(/^tg_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/);
    const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const { csrf } = (await signIn.json()) as { csrf: string };
    const read = (): Promise<Response> =>
      fetch(`${api.baseUrl}/usage/graphql`, {
        method: 'POST',
        headers: { cookie, 'x-csrf-token': csrf, origin: api.baseUrl, 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ usage { now } }' }),
      });
    expect((await read()).status).toBe(200);
    await config.revokeKey({ tenant: a.tenant, keyId: 'k2' });
    expect((await read()).status).toBe(401);
  });
});

describe('layout and what the page did', () => {
  it('fits 375 px without horizontal scroll', async () => {
    const { page } = web;
    await page.setViewportSize({ width: 375, height: 800 });
    await page.reload();
    await page.getByTestId('limit-card').first().waitFor();
    await page.locator('[data-testid=usage-chart] canvas').first().waitFor();
    const widths = await page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      client: document.documentElement.clientWidth,
    }));
    expect(widths.scroll).toBeLessThanOrEqual(widths.client);
    await web.screenshot('tenant-375px');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('signs out: the cookie is cleared and the old session id no longer works', async () => {
    const { page } = web;
    const cookie = (await web.context.cookies()).map((entry) => `${entry.name}=${entry.value}`).join('; ');
    await page.getByTestId('sign-out').click();
    await page.getByLabel('API key (tenant) or admin token (operator)').waitFor();
    expect(await web.context.cookies()).toEqual([]);
    expect((await fetch(`${api.baseUrl}/dashboard/session`, { headers: { cookie } })).status).toBe(401);
    await web.screenshot('signed-out');
  });

  it('made no request beyond its own origin, reported no CSP violation, threw nothing, opened no dialog', () => {
    expect(web.recorded.requests.length).toBeGreaterThan(10);
    expect(web.recorded.requests.filter((url) => !url.startsWith(`${api.baseUrl}/`))).toEqual([]);
    expect(cspViolations(web.recorded)).toEqual([]);
    expect(web.recorded.pageErrors).toEqual([]);
    expect(web.recorded.dialogs).toEqual([]);
  });
});
