/**
 * The dashboard's operator view (issue 18) in a real browser against the API process as `npm start` runs it: sign-in
 * with an admin token; the tenants page, a tenant's ledger audit, the plans, the pump/audit/breaker figures and the
 * admin audit log show what the admin API answers for the same moment; a denied request appears by its limit; stored
 * strings (an audit entry's target and body: markup, a `javascript:` URL, 10 KB) render as text and open no dialog;
 * an operator session reads no tenant usage; nothing leaves the origin and the CSP reports nothing.
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
import { startApiServer, storeTenantPlan, type ApiServer } from '../support/api-server.js';
import { cspViolations, ensureDashboardBuilt, openBrowser, type DashboardBrowser } from '../support/browser.js';
import { waitFor } from '../support/poll.js';
import { testStack, uniqueTenant } from '../support/stack.js';
import { MONTH } from '../support/time.js';

const stack = testStack();
const scratch = mkdtempSync(join(tmpdir(), 'dashboard-operator-'));
const dynamo = createDynamoClient({ endpoint: stack.dynamodbEndpoint, region: stack.dynamodbRegion });
const options = { tablePrefix: stack.tablePrefix };
const adminStore = new DynamoAdminStore(dynamo, new DynamoConfigStore(dynamo, options), options);
const HOSTILE = '<img src=x onerror=alert(1)>';
/** 7 units. */
const COST_7 = '{ products(first: 6) { nodes { id } } }';
const TIGHT: LimitSpec[] = [
  {
    id: parseLimitId('tight-hour'),
    scope: 'tenant',
    mode: 'hard',
    onDeciderDown: 'closed',
    algorithm: { kind: 'fixed-window', limit: 10, windowMs: 3_600_000 },
  },
];

let api: ApiServer;
let web: DashboardBrowser;
const token = generateAdminToken();
let tight: { tenant: string; key: string };

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
  api = await startApiServer({ scratch });
  web = await openBrowser();
}, 180_000);

afterAll(async () => {
  await web?.close();
  await api?.stop();
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
    expect(suspendedOnly.tenants.items.map((tenant) => tenant.id)).toEqual([`${tight.tenant}-b`]);
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
    const row = page.locator('[data-testid=refusal-row][data-kind=denied][data-limit=tight-hour]');
    await row.waitFor({ timeout: 20_000 });
    await waitFor('the operator view and the admin API to agree', async () => {
      const ops = await admin<{
        operations: { decisions: { kind: string; limit: string; count: number }[]; breaker: string; pump: { unacknowledged: number } };
      }>('{ operations { breaker pump { unacknowledged } decisions { kind limit count } } }');
      const denied = ops.operations.decisions.find((d) => d.kind === 'denied' && d.limit === 'tight-hour')?.count;
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

  it('lists the plans the admin API lists', async () => {
    const plans = await admin<{ plans: { id: string }[] }>('{ plans { id } }');
    await web.page.getByTestId('plan-row').first().waitFor();
    expect(await web.page.getByTestId('plan-row').count()).toBe(plans.plans.length);
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
