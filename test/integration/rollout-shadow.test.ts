/**
 * Plan shadow rollouts as tenants and operators see them (issue 17), against the API process as `npm start` runs it:
 * a tenant sees exactly what it would see without the rollout (no shadow id in `extensions.cost`, the RateLimit
 * headers or the usage API; the enforced limits unchanged), the operator sees the shadow limits through the admin
 * API (`servedPlan`, `rollout`).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { burst, startApiServer, type ApiServer } from '../support/api-server.js';
import { waitFor } from '../support/poll.js';
import { uniqueTenant } from '../support/stack.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** 7 units. */
const COST_7 = JSON.stringify({ query: '{ products(first: 6) { nodes { id } } }' });
const MONTH = { unit: 'month', anchorDay: 1, timeZone: 'UTC' };

let scratch: string;
let api: ApiServer;
let token: string;

interface Reply {
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: { code?: string; details?: Record<string, unknown> } }[];
}

async function admin(query: string, variables: Record<string, unknown> = {}): Promise<Reply> {
  const response = await fetch(`${api.baseUrl}/admin/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as Reply;
}

async function ok(query: string, variables: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const reply = await admin(query, variables);
  if (reply.errors !== undefined) throw new Error(`admin call failed: ${JSON.stringify(reply.errors)}`);
  return reply.data ?? {};
}

const bucket = (capacity: number): unknown => ({
  id: 'burst',
  scope: 'tenant',
  algorithm: { kind: 'token-bucket', capacity, refillAmount: 1, refillPeriodMs: 3_600_000 },
  mode: 'hard',
  onDeciderDown: 'open',
});

const monthly = (limit: number, mode = 'hard'): unknown => ({
  id: 'monthly',
  scope: 'tenant',
  algorithm: { kind: 'period-quota', limit, period: MONTH, thresholdsPercent: [] },
  mode,
  onDeciderDown: 'open',
});

const planOf = (id: string, version: number, limits: unknown[]): string =>
  JSON.stringify({ id, version, billingPeriod: MONTH, maxCostPerOperation: 1_000, limits });

/** A tenant on `plan` with one key. */
async function tenantOn(plan: string, prefix: string): Promise<{ tenant: string; key: string }> {
  const tenant = uniqueTenant(prefix);
  await ok('mutation($id: String!, $plan: String) { createTenant(id: $id, plan: $plan) { id } }', { id: tenant, plan });
  const created = await ok('mutation($t: String!) { createKey(tenant: $t, keyId: "k1") { key } }', { t: tenant });
  return { tenant, key: (created['createKey'] as { key: string }).key };
}

/** The limit ids the API instance serves for `plan` now (the operator's view: shadow limits included). */
async function servedIds(plan: string): Promise<string[]> {
  const data = await ok('query($id: String!) { servedPlan(id: $id) { limits { id mode } } }', { id: plan });
  return ((data['servedPlan'] as { limits: { id: string }[] } | null)?.limits ?? []).map((limit) => limit.id);
}

interface RolloutReply {
  status: string;
  limits: { limit: string; shadowId: string; wouldDeny: number }[];
  wouldAdmit: number;
  removedLimits: { limit: string; wouldAdmit: number }[];
}

async function rollout(plan: string): Promise<RolloutReply | null> {
  const data = await ok(
    'query($p: String!) { rollout(plan: $p) { status limits { limit shadowId wouldDeny } wouldAdmit removedLimits { limit wouldAdmit } } }',
    { p: plan },
  );
  return data['rollout'] as RolloutReply | null;
}

/** Waits until the rollout's counts hold over two flushes of the API process (each second), and answers them. */
async function settledRollout(plan: string, count: (reply: RolloutReply | null) => number): Promise<RolloutReply | null> {
  let last = -1;
  await waitFor('the rollout counts to settle', async () => {
    const now = count(await rollout(plan));
    const isSettled = now > 0 && now === last;
    last = now;
    if (!isSettled) await new Promise((resolveLater) => setTimeout(resolveLater, 1_100));
    return isSettled;
  });
  return rollout(plan);
}

/** The version of the running rollout the instance serves beside `plan`, or null. */
async function servedRolloutVersion(plan: string): Promise<number | null> {
  const data = await ok('query($id: String!) { servedPlan(id: $id) { rolloutVersion } }', { id: plan });
  return (data['servedPlan'] as { rolloutVersion: number | null } | null)?.rolloutVersion ?? null;
}

interface TenantView {
  status: number;
  body: string;
  headers: Record<string, string>;
  limits: { id: string; mode: string; remaining: number; isExceeded: boolean }[];
}

/** One metered request of the tenant, as it sees it: status, body, every header, its `extensions.cost.limits`. */
async function metered(key: string): Promise<TenantView> {
  const response = await fetch(`${api.baseUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: COST_7,
  });
  const body = await response.text();
  const limits = (JSON.parse(body) as { extensions?: { cost?: { limits?: TenantView['limits'] } } }).extensions?.cost?.limits ?? [];
  return {
    status: response.status,
    body,
    headers: Object.fromEntries(response.headers.entries()),
    limits: limits.map(({ id, mode, remaining, isExceeded }) => ({ id, mode, remaining, isExceeded })),
  };
}

/** The tenant's usage API answer (`usage.limits` and the whole body). */
async function usageOf(key: string): Promise<{ body: string; limits: { id: string; mode: string; remaining: number }[] }> {
  const response = await fetch(`${api.baseUrl}/usage/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query: '{ usage { limits { id mode remaining usedUnits limitUnits } denials { byLimit { limit } } } }' }),
  });
  const body = await response.text();
  return {
    body,
    limits: (JSON.parse(body) as { data: { usage: { limits: { id: string; mode: string; remaining: number }[] } } }).data.usage.limits,
  };
}

function tollgateBin(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolveRun) => {
    execFile(
      process.execPath,
      ['bin/tollgate.mjs', ...args],
      {
        cwd: REPO_ROOT,
        env: { PATH: process.env['PATH'] ?? '', TOLLGATE_ADMIN_URL: api.baseUrl, TOLLGATE_ADMIN_TOKEN: token },
        timeout: 60_000,
      },
      (error, stdout, stderr) => {
        resolveRun({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, out: stdout, err: stderr });
      },
    );
  });
}

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'rollout-shadow-'));
  api = await startApiServer({
    scratch,
    env: { API_DEMO_SEED: 'true', ACCOUNT_ENABLED: 'false', API_ADMIN_TOKEN_FILE: join(scratch, 'admin-token.json') },
  });
  token = (JSON.parse(readFileSync(join(scratch, 'admin-token.json'), 'utf8')) as { token: string }).token;
}, 180_000);

afterAll(async () => {
  await api?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

describe('a rollout as tenants see it', () => {
  it('shows a tenant exactly what it would see without the rollout; the operator sees the shadow limits', async () => {
    const plan = uniqueTenant('rv');
    // v1: a month of 14 units (the third request of 7 is denied); v2 changes both limits
    await ok('mutation($p: String!) { applyPlan(plan: $p) { version } }', { p: planOf(plan, 1, [bucket(7_000), monthly(14)]) });
    const before = await tenantOn(plan, 'rva');
    const during = await tenantOn(plan, 'rvb');
    const three = async (key: string): Promise<TenantView[]> => [await metered(key), await metered(key), await metered(key)];

    // given what a fresh tenant sees of three requests without a rollout
    await waitFor('the key to work', async () => (await usageOf(before.key)).limits.length > 0);
    const baseline = await three(before.key);
    const baselineUsage = await usageOf(before.key);
    expect(baseline.map((view) => view.status)).toEqual([200, 200, 429]);
    expect(baseline[0]?.limits.map((limit) => limit.id)).toEqual(['burst', 'monthly']);

    // when v2 runs in shadow, served by the instance (the operator sees it)
    await ok('mutation($p: String!) { startRollout(plan: $p, forSeconds: 600) { status } }', {
      p: planOf(plan, 2, [bucket(35), monthly(70)]),
    });
    await waitFor('the shadow limits to be served', async () => (await servedIds(plan)).includes('burst-sv2'));
    expect(await servedIds(plan)).toEqual(['burst', 'monthly', 'burst-sv2', 'monthly-sv2']);

    // then another fresh tenant's same requests show the same limits and headers, and no shadow id anywhere
    const seen = await three(during.key);
    expect(seen.map((view) => view.status)).toEqual([200, 200, 429]);
    seen.forEach((view, index) => {
      const expected = baseline[index] as TenantView;
      expect(view.limits).toEqual(expected.limits);
      expect(view.headers['ratelimit-policy']).toBe(expected.headers['ratelimit-policy']);
      expect(view.headers['ratelimit']?.replace(/;t=\d+/g, '')).toBe(expected.headers['ratelimit']?.replace(/;t=\d+/g, ''));
      expect(view.body).not.toMatch(/-sv\d/);
      expect(JSON.stringify(view.headers)).not.toMatch(/-sv\d/);
    });
    const usage = await usageOf(during.key);
    expect(usage.limits).toEqual(baselineUsage.limits);
    expect(usage.body).not.toMatch(/-sv\d/);
    await ok('mutation($p: String!) { abortRollout(plan: $p) { status } }', { p: plan });
  });

  it('refuses a plan whose own limit id takes the shadow suffix', async () => {
    const plan = uniqueTenant('rr');
    const reply = await admin('mutation($p: String!) { applyPlan(plan: $p) { version } }', {
      p: planOf(plan, 1, [{ ...(bucket(7_000) as object), id: 'burst-sv2' }]),
    });
    expect(reply.errors?.[0]?.extensions?.code).toBe('INVALID_INPUT');
    expect(reply.errors?.[0]?.message).toBe(
      'invalid plan:\nplan.limits.0.id: burst-sv2 ends in -sv<digits>, which names the shadow copies of rollouts',
    );
  });
});

describe('a shadow period quota', () => {
  it('counts from the enforced usage of its period: its would-deny count is what enforcing the new version denies', async () => {
    const plan = uniqueTenant('rq');
    // v1: 700 units a month; v2: 70 (10 requests of 7)
    await ok('mutation($p: String!) { applyPlan(plan: $p) { version } }', { p: planOf(plan, 1, [bucket(7_000), monthly(700)]) });
    const [shadowed, enforced] = [await tenantOn(plan, 'rqa'), await tenantOn(plan, 'rqb')];
    await waitFor('the keys to work', async () => (await usageOf(enforced.key)).limits.length > 0);

    // given 35 units of each tenant's month used before the rollout
    for (const key of [shadowed.key, enforced.key]) {
      expect(await burst({ baseUrl: api.baseUrl, key, body: COST_7, count: 5 })).toEqual([200, 200, 200, 200, 200]);
    }

    // when v2 runs in shadow and 12 concurrent requests arrive: v1 admits them all, v2 would have admitted 5 (35 + 35 = 70)
    await ok('mutation($p: String!) { startRollout(plan: $p, forSeconds: 600) { status } }', {
      p: planOf(plan, 2, [bucket(7_000), monthly(70)]),
    });
    await waitFor('the shadow limit to be served', async () => (await servedIds(plan)).includes('monthly-sv2'));
    const during = await burst({ baseUrl: api.baseUrl, key: shadowed.key, body: COST_7, count: 12 });
    expect(during.filter((status) => status === 200)).toHaveLength(12);
    const report = await settledRollout(plan, (reply) => reply?.limits[0]?.wouldDeny ?? 0);
    expect(report?.limits).toEqual([{ limit: 'monthly', shadowId: 'monthly-sv2', wouldDeny: 7 }]);

    // then promoted: the other tenant, with the same usage before, is denied exactly as often
    await ok('mutation($p: String!) { promoteRollout(plan: $p) { version } }', { p: plan });
    await waitFor(
      'v2 to be enforced',
      async () => (await usageOf(enforced.key)).limits.find((limit) => limit.id === 'monthly')?.remaining === 35,
    );
    const after = await burst({ baseUrl: api.baseUrl, key: enforced.key, body: COST_7, count: 12 });
    expect(after.filter((status) => status === 429)).toHaveLength(report?.limits[0]?.wouldDeny ?? -1);
  });
});

describe('a limit the new version removes', () => {
  /** A day of 35 units (5 requests of 7). */
  const cap = {
    id: 'cap',
    scope: 'tenant',
    algorithm: { kind: 'fixed-window', limit: 35, windowMs: 86_400_000 },
    mode: 'hard',
    onDeciderDown: 'open',
  };

  it('reports the refusals it caused that the new version would have admitted, as enforcement of the new version then shows', async () => {
    // v2 removes the day cap: of 12 concurrent requests v1 admits 5, v2 all 12
    const relaxed = uniqueTenant('rm');
    await ok('mutation($p: String!) { applyPlan(plan: $p) { version } }', { p: planOf(relaxed, 1, [bucket(7_000), cap]) });
    const [during, after] = [await tenantOn(relaxed, 'rma'), await tenantOn(relaxed, 'rmb')];
    const started = await ok(
      'mutation($p: String!) { startRollout(plan: $p, forSeconds: 600) { limits { limit } removedLimits { limit wouldAdmit } } }',
      {
        p: planOf(relaxed, 2, [bucket(7_000)]),
      },
    );
    expect(started['startRollout']).toEqual({ limits: [], removedLimits: [{ limit: 'cap', wouldAdmit: 0 }] });
    await waitFor('the rollout to be served', async () => (await servedRolloutVersion(relaxed)) === 2);
    const refused = (await burst({ baseUrl: api.baseUrl, key: during.key, body: COST_7, count: 12 })).filter((status) => status === 429);
    expect(refused).toHaveLength(7);
    const report = await settledRollout(relaxed, (reply) => reply?.wouldAdmit ?? 0);
    expect(report).toMatchObject({ wouldAdmit: 7, removedLimits: [{ limit: 'cap', wouldAdmit: 7 }], limits: [] });
    await ok('mutation($p: String!) { promoteRollout(plan: $p) { version } }', { p: relaxed });
    await waitFor('v2 to be enforced', async () => (await usageOf(after.key)).limits.length === 1);
    const admitted = (await burst({ baseUrl: api.baseUrl, key: after.key, body: COST_7, count: 12 })).filter((status) => status === 200);
    expect(admitted.length - (12 - refused.length)).toBe(report?.wouldAdmit);

    // v2 removes the cap but makes the bucket 28 units: what v1 refuses, v2 refuses too
    const stricter = uniqueTenant('rn');
    await ok('mutation($p: String!) { applyPlan(plan: $p) { version } }', { p: planOf(stricter, 1, [bucket(7_000), cap]) });
    const [during2, after2] = [await tenantOn(stricter, 'rna'), await tenantOn(stricter, 'rnb')];
    await ok('mutation($p: String!) { startRollout(plan: $p, forSeconds: 600) { status } }', { p: planOf(stricter, 2, [bucket(28)]) });
    await waitFor('the shadow limit to be served', async () => (await servedIds(stricter)).includes('burst-sv2'));
    expect(
      (await burst({ baseUrl: api.baseUrl, key: during2.key, body: COST_7, count: 12 })).filter((status) => status === 429),
    ).toHaveLength(7);
    const report2 = await settledRollout(stricter, (reply) => reply?.limits[0]?.wouldDeny ?? 0);
    expect(report2).toMatchObject({
      wouldAdmit: 0,
      removedLimits: [{ limit: 'cap', wouldAdmit: 0 }],
      limits: [{ limit: 'burst', wouldDeny: 1 }],
    });
    await ok('mutation($p: String!) { promoteRollout(plan: $p) { version } }', { p: stricter });
    await waitFor('v2 to be enforced', async () => (await usageOf(after2.key)).limits.length === 1);
    // v2 refuses what it would have denied plus what v1 refused and v2 would not have admitted
    const denied2 = (await burst({ baseUrl: api.baseUrl, key: after2.key, body: COST_7, count: 12 })).filter((status) => status === 429);
    expect(denied2).toHaveLength((report2?.limits[0]?.wouldDeny ?? 0) + 7 - (report2?.wouldAdmit ?? 0));
  });
});

describe('promote and abort at once', () => {
  it('one of them ends the rollout, the other is told it has ended (CONFLICT, exit 2), never DYNAMODB_UNAVAILABLE', async () => {
    const plan = uniqueTenant('rc');
    await ok('mutation($p: String!) { applyPlan(plan: $p) { version } }', { p: planOf(plan, 1, [bucket(7_000)]) });
    await ok('mutation($p: String!) { startRollout(plan: $p, forSeconds: 600) { status } }', { p: planOf(plan, 2, [bucket(35)]) });
    const [promoted, aborted] = await Promise.all([tollgateBin(['plans', 'promote', plan]), tollgateBin(['plans', 'abort', plan])]);
    const runs = [promoted, aborted];
    expect(runs.map((run) => run.code).sort()).toEqual([0, 2]);
    const loser = runs.find((run) => run.code === 2);
    const ending = (await ok('query($p: String!) { rollout(plan: $p) { status } }', { p: plan }))['rollout'] as { status: string };
    const step = loser === promoted ? 'promote' : 'abort';
    expect(loser?.err.trim()).toBe(`tollgate plans ${step}: CONFLICT: the rollout of plan ${plan} has ended (${ending.status})`);
    expect(['promoted', 'aborted']).toContain(ending.status);
  });
});
