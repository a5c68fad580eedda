/**
 * The dashboard's operator view (issue 18) in a real browser against the API process as `npm start` runs it (two of
 * them: the second reaches Redis through a proxy that can be cut): sign-in with an admin token; the tenants page, a
 * tenant's ledger audit, the plans, the pump/audit/breaker figures and the admin audit log show what the admin API
 * answers for the same moment; a denied request appears by its limit; denials sent to both processes are summed in
 * the fleet figures and the second one's degraded period is listed; top consumers rank a tenant that spent on both
 * processes with exactly the units the decider admitted (net of refunds); a shadow rollout shows its would-deny
 * counts; stored strings (markup, a `javascript:` URL, 10 KB) render as text and open no dialog; an operator
 * session reads no tenant usage; nothing leaves the origin and the CSP reports nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateAdminToken, hashAdminToken } from '../../src/admin/index.js';
import type { LimitSpec } from '../../src/decider/index.js';
import { DynamoAccountStore } from '../../src/billing/index.js';
import { DynamoConfigStore, putAccountSettings } from '../../src/graphql/index.js';
import { DynamoAdminStore } from '../../src/graphql/config/admin-store.js';
import { createDynamoClient } from '../../src/metering/index.js';
import { parseLimitId, parseTenantId } from '../../src/shared/index.js';
import { burstResponses, startApiServer, storeTenantPlan, type ApiServer } from '../support/api-server.js';
import { ARTIFACTS, cspViolations, ensureDashboardBuilt, openBrowser, type DashboardBrowser } from '../support/browser.js';
import { waitFor } from '../support/poll.js';
import { bucketPlan } from '../support/plan-json.js';
import { testStack, uniqueTenant } from '../support/stack.js';
import { startSwitchProxy, type SwitchProxy } from '../support/switch-proxy.js';
import { MONTH } from '../support/time.js';

const stack = testStack();
const scratch = mkdtempSync(join(tmpdir(), 'dashboard-operator-'));
const dynamo = createDynamoClient({ endpoint: stack.dynamodbEndpoint, region: stack.dynamodbRegion });
const options = { tablePrefix: stack.tablePrefix };
const adminStore = new DynamoAdminStore(dynamo, new DynamoConfigStore(dynamo, options), options);
const HOSTILE = '<img src=x onerror=alert(1)>';
/** 7 units. */
const COST_7 = '{ products(first: 6) { nodes { id } } }';
/** Unique: the fleet figures sum every tenant's denials of a limit id, and other files' tenants share Redis. */
const TIGHT_LIMIT = `th-${Date.now().toString(36)}`;
const TIGHT: LimitSpec[] = [
  {
    id: parseLimitId(TIGHT_LIMIT),
    scope: 'tenant',
    mode: 'hard',
    onDeciderDown: 'closed',
    algorithm: { kind: 'fixed-window', limit: 10, windowMs: 3_600_000 },
  },
];

let api: ApiServer;
/** The second API process: Redis through `proxy`. */
let api2: ApiServer;
let proxy: SwitchProxy;
let web: DashboardBrowser;
const token = generateAdminToken();
let tight: { tenant: string; key: string };
let big = { tenant: '', key: '', plan: '' };

/** A plan whose `burst` bucket holds `capacity` units (tenant-wide, refilled 1 unit an hour), as JSON. */
const bigPlan = (id: string, version: number, capacity: number): string => JSON.stringify(bucketPlan(id, version, capacity));

async function admin<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const response = await fetch(`${api.baseUrl}/admin/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data: T; errors?: unknown };
  expect(body.errors, JSON.stringify(body)).toBeUndefined();
  return body.data;
}

const fmt = (units: number): string => Math.round(units).toLocaleString('en-US');

beforeAll(async () => {
  ensureDashboardBuilt();
  await adminStore.createToken({ tokenId: `dash-${Date.now().toString(36)}`, hash: hashAdminToken(token), nowMs: Date.now(), audit: null });
  tight = await storeTenantPlan(TIGHT, { tenant: uniqueTenant('dt') });
  proxy = await startSwitchProxy(Number(new URL(stack.redisUrl).port));
  const redisUrl = new URL(stack.redisUrl);
  redisUrl.port = String(proxy.port);
  [api, api2] = await Promise.all([
    startApiServer({ scratch }),
    startApiServer({ scratch: mkdtempSync(join(scratch, 'api2-')), env: { REDIS_URL: redisUrl.toString() } }),
  ]);
  web = await openBrowser();
}, 240_000);

afterAll(async () => {
  await web?.close();
  await api?.stop();
  await api2?.stop();
  await proxy?.close();
  dynamo.destroy();
  rmSync(scratch, { recursive: true, force: true });
});

describe('the operator view', () => {
  it('signs in with an admin token into an HttpOnly SameSite=Strict cookie and lists the tenants the admin API lists', async () => {
    const planId = `p-${tight.tenant}`;
    for (const suffix of ['a', 'b'])
      await admin('mutation($id: String!, $plan: String) { createTenant(id: $id, plan: $plan) { id } }', {
        id: `${tight.tenant}-${suffix}`,
        plan: planId,
      });
    await admin('mutation($id: String!) { suspendTenant(id: $id) { id } }', { id: `${tight.tenant}-b` });
    const { page } = web;
    await page.goto(`${api.baseUrl}/dashboard`);
    await page.getByLabel('API key (tenant) or admin token (operator)').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('tenant-row').first().waitFor();
    const cookies = await web.context.cookies();
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatchObject({ name: 'tg_session', httpOnly: true, sameSite: 'Strict' });
    const listed = await admin<{ tenants: { items: { id: string; status: string }[] } }>('{ tenants(first: 25) { items { id status } } }');
    const rows = await page
      .getByTestId('tenant-row')
      .evaluateAll((elements) => elements.map((element) => element.getAttribute('data-tenant')));
    expect(rows).toEqual(listed.tenants.items.map((tenant) => tenant.id));
    // the suspended filter shows exactly the suspended ones
    await page.getByLabel('Status').selectOption('suspended');
    await page.locator(`[data-tenant="${tight.tenant}-b"]`).waitFor();
    const suspended = await admin<{ tenants: { items: { id: string }[] } }>('{ tenants(status: suspended, first: 25) { items { id } } }');
    expect(
      await page.getByTestId('tenant-row').evaluateAll((elements) => elements.map((element) => element.getAttribute('data-tenant'))),
    ).toEqual(suspended.tenants.items.map((tenant) => tenant.id));
    await page.getByLabel('Status').selectOption('');
  });

  it('pages the tenants from a cursor with the plan filter applied by the store (first page to last, nothing skipped)', async () => {
    const planId = `p-${tight.tenant}`;
    for (const suffix of ['c', 'd', 'e'])
      await admin('mutation($id: String!, $plan: String) { createTenant(id: $id, plan: $plan) { id } }', {
        id: `${tight.tenant}-${suffix}`,
        plan: planId,
      });
    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 10; page += 1) {
      const data: { tenants: { items: { id: string }[]; cursor: string | null } } = await admin(
        'query($plan: String, $after: String) { tenants(plan: $plan, first: 2, after: $after) { items { id } cursor } }',
        { plan: planId, after },
      );
      seen.push(...data.tenants.items.map((tenant) => tenant.id));
      after = data.tenants.cursor;
      if (after === null) break;
    }
    expect(seen).toEqual(['a', 'b', 'c', 'd', 'e'].map((suffix) => `${tight.tenant}-${suffix}`));
    const suspendedOnly = await admin<{ tenants: { items: { id: string }[] } }>(
      'query($plan: String) { tenants(plan: $plan, status: suspended, first: 1) { items { id } } }',
      { plan: planId },
    );
    // on a mismatch, say what the store holds for the tenant and what the unfiltered walk saw (a rare failure beside other files)
    const why = async (): Promise<string> =>
      JSON.stringify({
        b: await adminStore.getTenant(`${tight.tenant}-b`),
        suspended: await adminStore.listTenants({ planId, status: 'suspended', first: 25 }),
      });
    const got = suspendedOnly.tenants.items.map((tenant) => tenant.id);
    expect(got, got.length === 1 && got[0] === `${tight.tenant}-b` ? '' : await why()).toEqual([`${tight.tenant}-b`]);
  });

  it("shows a tenant's ledger audit as the admin API answers it, and the API's error for a tenant without account", async () => {
    const audited = `${tight.tenant}-b`;
    await putAccountSettings({
      accounts: new DynamoAccountStore(dynamo, options),
      config: new DynamoConfigStore(dynamo, options),
      settings: {
        tenant: parseTenantId(audited),
        billingPeriod: MONTH,
        price: { currency: 'EUR', baseFeeMicros: 0, includedUnits: 0, tiers: [{ unitPriceMicros: 1 }] },
      },
      nowMs: Date.now(),
    });
    const { page } = web;
    await page.getByLabel('Status').selectOption('suspended');
    await page.locator(`[data-tenant="${audited}"]`).getByRole('button', { name: 'Audit' }).click();
    await page.getByTestId('tenant-audit').waitFor();
    const audit = await admin<{ audit: { drift: number | null; admitted: number | null } }>(
      'query($t: String!) { audit(tenant: $t) { drift admitted } }',
      {
        t: audited,
      },
    );
    const text = (await page.getByTestId('tenant-audit').textContent()) ?? '';
    expect(text).toContain(`drift ${audit.audit.drift === null ? '—' : fmt(audit.audit.drift)}`);
    expect(text).toContain(`admitted ${audit.audit.admitted === null ? '—' : fmt(audit.audit.admitted)}`);
    await admin('mutation($id: String!) { suspendTenant(id: $id) { id } }', { id: `${tight.tenant}-a` });
    await page.getByLabel('Status').selectOption('');
    await page.getByLabel('Status').selectOption('suspended');
    await page.locator(`[data-tenant="${tight.tenant}-a"]`).getByRole('button', { name: 'Audit' }).click();
    await page.locator('[data-testid=tenants] [role=alert]').filter({ hasText: 'has no account' }).waitFor();
    await page.getByLabel('Status').selectOption('');
  });

  it('shows a denied request by its limit, with the count the admin API answers, and the pump and breaker figures', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 3; i += 1) {
      const reply = await fetch(`${api.baseUrl}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${tight.key}` },
        body: JSON.stringify({ query: COST_7 }),
      });
      statuses.push(reply.status);
    }
    expect(statuses).toEqual([200, 429, 429]);
    const { page } = web;
    const row = page.locator(`[data-testid=refusal-row][data-kind=denied][data-limit="${TIGHT_LIMIT}"]`);
    await row.waitFor({ timeout: 20_000 });
    await waitFor('the operator view and the admin API to agree', async () => {
      const ops = await admin<{
        operations: { decisions: { kind: string; limit: string; count: number }[]; breaker: string; pump: { unacknowledged: number } };
      }>('{ operations { breaker pump { unacknowledged } decisions { kind limit count } } }');
      const denied = ops.operations.decisions.find((d) => d.kind === 'denied' && d.limit === TIGHT_LIMIT)?.count;
      return (
        denied === 2 &&
        (await row.locator('[data-field=count]').textContent()) === fmt(denied) &&
        (await page.locator('[data-field=breaker]').textContent()) === ops.operations.breaker &&
        (await page.locator('[data-field=pump-backlog]').textContent()) === fmt(ops.operations.pump.unacknowledged)
      );
    });
    await page.locator('[data-testid=refusals] canvas').first().waitFor({ timeout: 20_000 });
    await web.screenshot('operator');
  });

  it('sums the denials of every API process in the fleet figures, and shows the sum the admin API answers', async () => {
    // (the first process denied 2 above; the window is shared in Redis, so the second one denies both of these)
    const statuses = await burstResponses({ baseUrl: api2.baseUrl, key: tight.key, body: JSON.stringify({ query: COST_7 }), count: 2 });
    expect(statuses.map((reply) => reply.status)).toEqual([429, 429]);
    const { page } = web;
    const row = page.locator(`[data-testid=fleet-row][data-kind=denied][data-limit="${TIGHT_LIMIT}"]`);
    await waitFor('the fleet sum on the page and in the admin API to be 4', async () => {
      const ops = await admin<{ operations: { fleet: { minutes: { kind: string; limit: string; count: number }[] } } }>(
        '{ operations { fleet(minutes: 60) { minutes { kind limit count } } } }',
      );
      const fleet = ops.operations.fleet.minutes
        .filter((m) => m.kind === 'denied' && m.limit === TIGHT_LIMIT)
        .reduce((sum, m) => sum + m.count, 0);
      return (
        fleet === 4 &&
        (await row
          .locator('[data-field=count]')
          .textContent()
          .catch(() => null)) === fmt(fleet)
      );
    });
    // the answering instance's own counters still say 2: the fleet figure is not one instance's
    const own = await admin<{ operations: { decisions: { kind: string; limit: string; count: number }[] } }>(
      '{ operations { decisions { kind limit count } } }',
    );
    expect(own.operations.decisions.find((d) => d.kind === 'denied' && d.limit === TIGHT_LIMIT)?.count).toBe(2);
    const bad = await fetch(`${api.baseUrl}/admin/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: '{ operations { fleet(minutes: 0) { from } } }' }),
    });
    expect(((await bad.json()) as { errors: { extensions: { code: string } }[] }).errors[0]?.extensions.code).toBe('INVALID_INPUT');
  });

  it('ranks a tenant that spent on both processes with exactly the units the decider admitted, net of refunds', async () => {
    const plan = `p-big-${Date.now().toString(36)}`;
    await admin('mutation($p: String!) { applyPlan(plan: $p) { id } }', { p: bigPlan(plan, 1, 1_000_000) });
    const tenant = uniqueTenant('big');
    await admin('mutation($id: String!, $plan: String) { createTenant(id: $id, plan: $plan) { id } }', { id: tenant, plan });
    const created = await admin<{ createKey: { key: string } }>('mutation($t: String!) { createKey(tenant: $t, keyId: "k1") { key } }', {
      t: tenant,
    });
    big = { tenant, key: created.createKey.key, plan };
    // 101 units each, and a refund: c-rare has 3 products, so 51 reserved, 4 charged
    const full = JSON.stringify({ query: '{ products(first: 100) { nodes { id } } }' });
    const refunded = JSON.stringify({ query: '{ products(category: "c-rare", first: 50) { nodes { id } } }' });
    const replies = (
      await Promise.all([
        burstResponses({ baseUrl: api.baseUrl, key: big.key, body: full, count: 12 }),
        burstResponses({ baseUrl: api2.baseUrl, key: big.key, body: full, count: 12 }),
        burstResponses({ baseUrl: api.baseUrl, key: big.key, body: refunded, count: 5 }),
        burstResponses({ baseUrl: api2.baseUrl, key: big.key, body: refunded, count: 5 }),
      ])
    ).flat();
    expect(replies.every((reply) => reply.status === 200)).toBe(true);
    const charged = replies.reduce(
      (sum, reply) => sum + (JSON.parse(reply.body) as { extensions: { cost: { actual: number } } }).extensions.cost.actual,
      0,
    );
    expect(charged).toBe(24 * 101 + 10 * 4);
    const usage = await fetch(`${api.baseUrl}/usage/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${big.key}` },
      body: JSON.stringify({ query: '{ usage { period { usedUnits } } }' }),
    });
    expect(((await usage.json()) as { data: { usage: { period: { usedUnits: number } } } }).data.usage.period.usedUnits).toBe(charged);
    type Top = { topConsumers: { totalUnits: number; items: { tenant: string; units: number; share: number }[] } };
    const query = 'query($w: RankingWindow) { topConsumers(window: $w, first: 100) { totalUnits items { tenant units share } } }';
    for (const w of ['PERIOD', 'LAST_24_HOURS'])
      await waitFor(`${w}: the ranking to hold the tenant with exactly its admitted units`, async () => {
        const top = await admin<Top>(query, { w });
        const item = top.topConsumers.items.find((entry) => entry.tenant === tenant);
        return item !== undefined && item.units === charged && Math.abs(item.share - charged / top.topConsumers.totalUnits) < 1e-9;
      });
    // the page's table is the admin API's first 10, read at the same moment (other files' tenants spend meanwhile)
    const { page } = web;
    await page.locator(`[data-testid=top-row][data-tenant="${tenant}"]`).waitFor({ timeout: 20_000 });
    let seen = { page: '', api: '' };
    await waitFor(
      'the page to show the ranking the admin API answers',
      async () => {
        const top = await admin<Top>('{ topConsumers(first: 10) { items { tenant units share } } }');
        seen = {
          api: JSON.stringify(top.topConsumers.items.map((item) => [item.tenant, fmt(item.units), `${(item.share * 100).toFixed(1)} %`])),
          page: JSON.stringify(
            await page
              .getByTestId('top-row')
              .evaluateAll((rows) =>
                rows.map((row) => [
                  row.getAttribute('data-tenant'),
                  row.querySelector('[data-field=units]')?.textContent,
                  row.querySelector('[data-field=share]')?.textContent,
                ]),
              ),
          ),
        };
        return seen.page === seen.api;
      },
      { timeoutMs: 30_000, intervalMs: 300 },
    ).catch(() => undefined);
    expect(seen.page).toBe(seen.api);
    expect(await page.locator('[data-testid=top-consumers] meter').count()).toBeGreaterThan(0);
    await page.getByTestId('top-consumers').screenshot({ path: join(ARTIFACTS, 'operator-top-consumers.png') });
  });

  it('shows a shadow rollout in progress with the would-deny counts the admin API answers', async () => {
    await admin('mutation($p: String!) { startRollout(plan: $p, forSeconds: 3600) { status } }', { p: bigPlan(big.plan, 2, 300) });
    const body = JSON.stringify({ query: '{ products(first: 100) { nodes { id } } }' });
    type RolloutReply = { rollout: { status: string; limits: { limit: string; wouldDeny: number }[] } | null };
    await waitFor('the shadow limit to count would-denials', async () => {
      await burstResponses({ baseUrl: api.baseUrl, key: big.key, body, count: 4 });
      const reply = await admin<RolloutReply>('query($p: String!) { rollout(plan: $p) { status limits { limit wouldDeny } } }', {
        p: big.plan,
      });
      return (reply.rollout?.limits[0]?.wouldDeny ?? 0) > 0;
    });
    const { page } = web;
    const row = page.locator(`[data-testid=rollout-row][data-plan="${big.plan}"]`);
    await row.first().waitFor({ timeout: 20_000 });
    await waitFor('the page to show the would-deny count the admin API answers', async () => {
      const reply = await admin<RolloutReply>('query($p: String!) { rollout(plan: $p) { status limits { limit wouldDeny } } }', {
        p: big.plan,
      });
      const limit = reply.rollout?.limits[0];
      return (
        reply.rollout?.status === 'running' &&
        limit !== undefined &&
        (await row.first().getAttribute('data-limit')) === limit.limit &&
        (await row.first().locator('[data-field=would-deny]').textContent()) === fmt(limit.wouldDeny)
      );
    });
    await page.getByTestId('rollouts').screenshot({ path: join(ARTIFACTS, 'operator-rollouts.png') });
    await admin('mutation($p: String!) { abortRollout(plan: $p) { status } }', { p: big.plan });
  });

  it("lists the second process's degraded-mode period once its Redis is back", { timeout: 180_000 }, async () => {
    const instancePort = new URL(api2.baseUrl).port;
    const body = JSON.stringify({ query: COST_7 });
    proxy.cut();
    // requests while Redis is unreachable: refused (the limit fails closed) until the breaker opens
    await waitFor('the second process to refuse fail-closed', async () => {
      const [reply] = await burstResponses({ baseUrl: api2.baseUrl, key: tight.key, body, count: 1 });
      return reply?.status === 503;
    });
    await burstResponses({ baseUrl: api2.baseUrl, key: tight.key, body, count: 5 });
    proxy.restore();
    type Fleet = { operations: { fleet: { degraded: { instance: string; from: string; to: string | null; states: string[] }[] } } };
    const period = await waitFor(
      'a closed degraded period of the second process in the fleet figures',
      async () => {
        await burstResponses({ baseUrl: api2.baseUrl, key: tight.key, body, count: 1 });
        const ops = await admin<Fleet>('{ operations { fleet(minutes: 60) { degraded { instance from to states } } } }');
        const found = ops.operations.fleet.degraded.find((p) => p.instance.includes(`:${instancePort}:`) && p.to !== null);
        return found ?? false;
      },
      { timeoutMs: 120_000, intervalMs: 1_000 },
    );
    expect(period.states).toContain('open');
    expect(Date.parse(period.to ?? '')).toBeGreaterThanOrEqual(Date.parse(period.from));
    const item = web.page.getByTestId('degraded-period').filter({ hasText: period.instance });
    await item.first().waitFor({ timeout: 20_000 });
    expect(await item.first().textContent()).toContain(`to ${period.to?.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}`);
    await web.screenshot('operator-fleet');
  });

  it('lists the plans the admin API lists', async () => {
    // (other test files store plans meanwhile: the page, which polls, agrees with the API as read at the same moment)
    await web.page.getByTestId('plan-row').first().waitFor();
    let seen = { page: 0, api: 0 };
    await waitFor(
      "the page's plans to equal the API's",
      async () => {
        const plans = await admin<{ plans: { id: string }[] }>('{ plans { id } }');
        seen = { page: await web.page.getByTestId('plan-row').count(), api: plans.plans.length };
        return seen.page === seen.api;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    ).catch(() => undefined);
    expect(seen.page).toBe(seen.api);
    expect(seen.page).toBeGreaterThan(0);
  });

  it('renders hostile stored strings as text: no element made of them, no dialog, no javascript: link', async () => {
    const long = 'x'.repeat(10_240);
    await adminStore.appendAudit({
      tokenId: 'dash-hostile',
      action: 'note.hostile',
      target: HOSTILE,
      after: { link: 'javascript:alert(1)', long },
      nowMs: Date.now(),
    });
    const { page } = web;
    const row = page.getByTestId('audit-row').filter({ hasText: 'note.hostile' });
    await row.first().waitFor({ timeout: 20_000 });
    expect(await row.first().locator('td').nth(3).textContent()).toBe(HOSTILE);
    expect(await row.first().textContent()).toContain('javascript:alert(1)');
    expect(await row.first().textContent()).toContain(long);
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.locator('a[href^="javascript"]').count()).toBe(0);
    await page.waitForTimeout(500);
    expect(web.recorded.dialogs).toEqual([]);
    await web.screenshot('operator-hostile');
  });

  it('fits 375 px without horizontal scroll', async () => {
    const { page } = web;
    await page.setViewportSize({ width: 375, height: 800 });
    await page.reload();
    await page.getByTestId('tenant-row').first().waitFor();
    const widths = await page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      client: document.documentElement.clientWidth,
    }));
    expect(widths.scroll).toBeLessThanOrEqual(widths.client);
    await web.screenshot('operator-375px');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('reads no tenant usage through an operator session; a revoked admin token ends it', async () => {
    const read = (path: string, body: string): Promise<number> =>
      web.page.evaluate(
        async ({ target, payload }) => {
          const session = (await (await fetch('/dashboard/session')).json()) as { csrf: string };
          const response = await fetch(target, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrf },
            body: payload,
          });
          return response.status;
        },
        { target: path, payload: body },
      );
    expect(await read('/usage/graphql', JSON.stringify({ query: '{ usage { now } }' }))).toBe(403);
    expect(await read('/admin/graphql', JSON.stringify({ query: '{ whoami }' }))).toBe(200);
    const extra = generateAdminToken();
    await adminStore.createToken({
      tokenId: `dash-x-${Date.now().toString(36)}`,
      hash: hashAdminToken(extra),
      nowMs: Date.now(),
      audit: null,
    });
    const signIn = await fetch(`${api.baseUrl}/dashboard/session`, {
      method: 'POST',
      headers: { origin: api.baseUrl, 'content-type': 'application/json' },
      body: JSON.stringify({ credential: extra }),
    });
    const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const { csrf, name } = (await signIn.json()) as { csrf: string; name: string };
    const whoami = (): Promise<Response> =>
      fetch(`${api.baseUrl}/admin/graphql`, {
        method: 'POST',
        headers: { cookie, 'x-csrf-token': csrf, origin: api.baseUrl, 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ whoami }' }),
      });
    expect(await (await whoami()).json()).toEqual({ data: { whoami: name } });
    await admin('mutation($id: String!) { revokeAdminToken(id: $id) { id } }', { id: name });
    expect((await whoami()).status).toBe(401);
  });

  it('made no request beyond its own origin and reported no CSP violation', () => {
    expect(web.recorded.requests.filter((url) => !url.startsWith(`${api.baseUrl}/`))).toEqual([]);
    expect(cspViolations(web.recorded)).toEqual([]);
    expect(web.recorded.pageErrors).toEqual([]);
  });
});
