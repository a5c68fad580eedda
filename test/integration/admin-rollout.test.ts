/**
 * Plan shadow rollouts (issue 17) against the API process as `npm start` runs it: a new version's changed limit
 * runs in shadow beside the enforced one; a concurrent burst is all admitted and the rollout reports what it
 * would have denied (counted from every decision, flushed by the API process); promoted, the version is enforced
 * and the same burst against fresh state is denied exactly as often. Aborted and expired rollouts stop shadowing.
 * The CLI (`bin/tollgate.mjs plans rollout status`) reads the same counts. The same activity counters give
 * `keys list` each key's last use and the usage API a tenant's denials by limit (exact counts, its own only).
 * `tollgate audit` without --tenant walks every tenant with an account and exits 1 on drift.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admittedKey, shardOf } from '../../src/decider/index.js';
import { parseTenantId } from '../../src/shared/index.js';
import { burst, startApiServer, type ApiServer } from '../support/api-server.js';
import { waitFor } from '../support/poll.js';
import { bucketPlan } from '../support/plan-json.js';
import { testStack, uniqueTenant } from '../support/stack.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** 7 units. */
const COST_7 = JSON.stringify({ query: '{ products(first: 6) { nodes { id } } }' });
const MONTH = { unit: 'month', anchorDay: 1, timeZone: 'UTC' };

let scratch: string;
let api: ApiServer;
let token: string;

interface Reply {
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: { code?: string } }[];
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

/** A plan whose `burst` bucket holds `capacity` units (tenant-wide, refilled 1 unit an hour). */
const planOf = (id: string, version: number, capacity: number, extra: unknown[] = []): string =>
  JSON.stringify(bucketPlan(id, version, capacity, extra));

/** A tenant on `plan` with one key. */
async function tenantOn(plan: string, prefix: string): Promise<string> {
  const tenant = uniqueTenant(prefix);
  await ok('mutation($id: String!, $plan: String) { createTenant(id: $id, plan: $plan) { id } }', { id: tenant, plan });
  const created = await ok('mutation($t: String!) { createKey(tenant: $t, keyId: "k1") { key } }', { t: tenant });
  return (created['createKey'] as { key: string }).key;
}

/** The limits a key's plan is served with now, as the usage API (read-only) lists them. */
async function servedLimits(key: string): Promise<{ id: string; mode: string; remaining: number }[]> {
  const response = await fetch(`${api.baseUrl}/usage/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query: '{ usage { limits { id mode remaining } } }' }),
  });
  const body = (await response.json()) as { data?: { usage: { limits: { id: string; mode: string; remaining: number }[] } } };
  return body.data?.usage.limits ?? [];
}

/** The limits the API instance serves for `plan` now (the operator's view: a rollout's shadow limits included). */
async function servedPlanLimits(plan: string): Promise<{ id: string; mode: string }[]> {
  const data = await ok('query($id: String!) { servedPlan(id: $id) { limits { id mode } } }', { id: plan });
  return (data['servedPlan'] as { limits: { id: string; mode: string }[] } | null)?.limits ?? [];
}

interface RolloutReply {
  status: string;
  fromVersion: number;
  toVersion: number;
  limits: { limit: string; shadowId: string; wouldDeny: number; hours: { hour: string; wouldDeny: number }[] }[];
}

async function rollout(plan: string): Promise<RolloutReply | null> {
  const data = await ok(
    'query($p: String!) { rollout(plan: $p) { status fromVersion toVersion limits { limit shadowId wouldDeny hours { hour wouldDeny } } } }',
    { p: plan },
  );
  return data['rollout'] as RolloutReply | null;
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
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
        resolveRun({ code, out: stdout, err: stderr });
      },
    );
  });
}

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'admin-rollout-'));
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

describe('plan shadow rollout', () => {
  it('reports would-deny counts that match what enforcement then denies on the same traffic', async () => {
    const plan = uniqueTenant('ro');
    await ok('mutation($p: String!) { applyPlan(plan: $p) { version } }', { p: planOf(plan, 1, 7_000) });
    const [first, second, probe] = [await tenantOn(plan, 'roa'), await tenantOn(plan, 'rob'), await tenantOn(plan, 'roc')];

    // given v2 (5 requests of 7 units fit its bucket) rolled out in shadow for 10 minutes
    const started = await ok('mutation($p: String!) { startRollout(plan: $p, forSeconds: 600) { status toVersion limits { shadowId } } }', {
      p: planOf(plan, 2, 35),
    });
    expect(started['startRollout']).toEqual({ status: 'running', toVersion: 2, limits: [{ shadowId: 'burst-sv2' }] });
    await waitFor('the shadow limit to be served', async () => (await servedPlanLimits(plan)).some((limit) => limit.id === 'burst-sv2'));
    expect((await servedPlanLimits(plan)).find((limit) => limit.id === 'burst-sv2')?.mode).toBe('shadow');
    // the tenant never sees it
    expect((await servedLimits(probe)).map((limit) => limit.id)).toEqual(['burst']);

    // when 12 concurrent requests arrive: v1 admits them all, v2 would have denied 7
    const during = await burst({ baseUrl: api.baseUrl, key: first, body: COST_7, count: 12 });
    expect(during.filter((status) => status === 200)).toHaveLength(12);
    await waitFor('the would-deny count to be flushed', async () => ((await rollout(plan))?.limits[0]?.wouldDeny ?? 0) >= 7);
    const report = await rollout(plan);
    expect(report?.limits).toHaveLength(1);
    expect(report?.limits[0]).toMatchObject({ limit: 'burst', wouldDeny: 7 });
    expect(report?.limits[0]?.hours.reduce((sum, hour) => sum + hour.wouldDeny, 0)).toBe(7);

    // the CLI reads the same counts
    const cli = await tollgateBin(['plans', 'rollout', 'status', plan, '--json']);
    expect(cli.code).toBe(0);
    expect((JSON.parse(cli.out) as RolloutReply).limits[0]?.wouldDeny).toBe(7);

    // then promoted: v2 is enforced, and the same burst against fresh state is denied 7 times
    const promoted = await ok('mutation($p: String!) { promoteRollout(plan: $p) { id version } }', { p: plan });
    expect(promoted['promoteRollout']).toEqual({ id: plan, version: 2 });
    await waitFor('v2 to be enforced', async () => {
      const limits = await servedLimits(probe);
      return limits.length === 1 && limits[0]?.id === 'burst' && limits[0].remaining === 35;
    });
    const after = await burst({ baseUrl: api.baseUrl, key: second, body: COST_7, count: 12 });
    expect(after.filter((status) => status === 429)).toHaveLength(report?.limits[0]?.wouldDeny ?? -1);
    expect(after.filter((status) => status === 200)).toHaveLength(5);
    expect((await rollout(plan))?.status).toBe('promoted');

    // every step is in the audit log
    const log = await ok('query($t: String!) { auditLog(target: $t) { items { action } } }', { t: `plan/${plan}` });
    const actions = (log['auditLog'] as { items: { action: string }[] }).items.map((entry) => entry.action);
    expect(actions).toEqual(expect.arrayContaining(['plan.rollout.start', 'plan.rollout.promote']));
  });

  it('stops shadowing when aborted or expired; refuses a rollout that changes nothing or goes back', async () => {
    const plan = uniqueTenant('rx');
    await ok('mutation($p: String!) { applyPlan(plan: $p) { version } }', { p: planOf(plan, 3, 7_000) });
    const quota = {
      id: 'daily',
      scope: 'tenant',
      algorithm: { kind: 'fixed-window', limit: 70, windowMs: 86_400_000 },
      mode: 'hard',
      onDeciderDown: 'open',
    };

    const unchanged = await admin('mutation($p: String!) { startRollout(plan: $p, forSeconds: 60) { status } }', {
      p: planOf(plan, 4, 7_000),
    });
    expect(unchanged.errors?.[0]?.message).toBe(`version 4 changes no limit of plan ${plan}`);
    const older = await admin('mutation($p: String!) { startRollout(plan: $p, forSeconds: 60) { status } }', { p: planOf(plan, 2, 35) });
    expect(older.errors?.[0]?.message).toContain('a rollout needs a later version');

    // aborted through the CLI: the added limit was shadowed, then is no longer served
    const file = join(scratch, `${plan}-v4.json`);
    writeFileSync(file, planOf(plan, 4, 7_000, [quota]));
    const startedCli = await tollgateBin(['plans', 'rollout', file, '--for', '1h']);
    expect(startedCli.code, startedCli.err).toBe(0);
    expect(startedCli.out).toContain('daily-sv4');
    const again = await tollgateBin(['plans', 'rollout', file, '--for', '1h']);
    expect(again.code).toBe(2);
    expect(again.err).toContain('already has a rollout running');
    await waitFor('the shadow limit to be served', async () => (await servedPlanLimits(plan)).some((limit) => limit.id === 'daily-sv4'));
    const aborted = await tollgateBin(['plans', 'abort', plan]);
    expect(aborted.code, aborted.err).toBe(0);
    await waitFor('the shadow limit to be removed', async () => !(await servedPlanLimits(plan)).some((limit) => limit.id === 'daily-sv4'));
    expect((await rollout(plan))?.status).toBe('aborted');
    expect((await tollgateBin(['plans', 'promote', plan])).err).toContain('has ended (aborted)');

    // a rollout for 2 s ends by itself
    await ok('mutation($p: String!) { startRollout(plan: $p, forSeconds: 2) { status } }', { p: planOf(plan, 5, 7_000, [quota]) });
    await waitFor('the rollout to expire', async () => (await rollout(plan))?.status === 'expired');
    await waitFor(
      'the expired shadow limit to be gone',
      async () => !(await servedPlanLimits(plan)).some((limit) => limit.id === 'daily-sv5'),
    );
    expect((await tollgateBin(['plans', 'rollout', file, '--for', 'soon'])).code).toBe(2);
  });
});

describe('keys last used', () => {
  it('lists when each key was last used (flushed by the API process), null for a key never used', async () => {
    const plan = uniqueTenant('lu');
    await ok('mutation($p: String!) { applyPlan(plan: $p) { version } }', { p: planOf(plan, 1, 7_000) });
    const tenant = uniqueTenant('lut');
    await ok('mutation($id: String!, $plan: String) { createTenant(id: $id, plan: $plan) { id } }', { id: tenant, plan });
    const used = (
      (await ok('mutation($t: String!) { createKey(tenant: $t, keyId: "used") { key } }', { t: tenant }))['createKey'] as { key: string }
    ).key;
    await ok('mutation($t: String!) { createKey(tenant: $t, keyId: "idle") { key } }', { t: tenant });
    const before = Date.now();
    await waitFor(
      'a request of the used key',
      async () => (await burst({ baseUrl: api.baseUrl, key: used, body: COST_7, count: 1 }))[0] === 200,
    );
    const sent = Date.now();

    const listed = async (): Promise<{ keyId: string; lastUsedAt: string | null }[]> => {
      const run = await tollgateBin(['keys', 'list', tenant, '--json']);
      expect(run.code, run.err).toBe(0);
      return JSON.parse(run.out) as { keyId: string; lastUsedAt: string | null }[];
    };
    await waitFor('the last use to be flushed', async () => (await listed()).some((key) => key.lastUsedAt !== null));
    const keys = await listed();
    const lastUsedMs = Date.parse(keys.find((key) => key.keyId === 'used')?.lastUsedAt ?? '');
    expect(lastUsedMs).toBeGreaterThanOrEqual(before);
    expect(lastUsedMs).toBeLessThanOrEqual(sent);
    expect(keys.find((key) => key.keyId === 'idle')?.lastUsedAt).toBeNull();
    expect((await tollgateBin(['keys', 'list', tenant])).out).toMatch(/KEYID\s+PLAN\s+FINGERPRINT\s+CREATEDAT\s+LASTUSEDAT/);
  });
});

describe('usage: recent denials by limit', () => {
  it("counts a denied burst exactly, per limit, in the tenant's own usage only", async () => {
    const plan = uniqueTenant('dn');
    await ok('mutation($p: String!) { applyPlan(plan: $p) { version } }', { p: planOf(plan, 1, 35) });
    const [denied, quiet] = [await tenantOn(plan, 'dna'), await tenantOn(plan, 'dnb')];
    const body = JSON.stringify({ query: 'query Catalog { products(first: 6) { nodes { id } } }' });
    await waitFor('the key to work', async () => (await servedLimits(denied)).length > 0);

    // 12 concurrent requests of 7 units against a 35-unit bucket: 7 denied
    const statuses = await burst({ baseUrl: api.baseUrl, key: denied, body, count: 12 });
    const deniedCount = statuses.filter((status) => status === 429).length;
    expect(deniedCount).toBe(7);

    const denials = async (key: string): Promise<DenialsReply> => {
      const response = await fetch(`${api.baseUrl}/usage/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify({ query: '{ usage { denials { byLimit { limit thisHour last24Hours } recent { at limit operation } } } }' }),
      });
      return ((await response.json()) as { data: { usage: { denials: DenialsReply } } }).data.usage.denials;
    };
    await waitFor('the denials to be flushed', async () => ((await denials(denied)).byLimit[0]?.last24Hours ?? 0) >= deniedCount);
    const seen = await denials(denied);
    expect(seen.byLimit).toHaveLength(1);
    expect(seen.byLimit[0]).toMatchObject({ limit: 'burst', last24Hours: deniedCount });
    // all of them in this hour, unless the burst straddled an hour's start
    expect(seen.byLimit[0]?.thisHour).toBeLessThanOrEqual(deniedCount);
    expect(seen.recent).toHaveLength(deniedCount);
    expect(seen.recent.every((denial) => denial.limit === 'burst' && denial.operation === 'Catalog')).toBe(true);
    expect(await denials(quiet)).toEqual({ byLimit: [], recent: [] });
  });
});

interface DenialsReply {
  byLimit: { limit: string; thisHour: number; last24Hours: number }[];
  recent: { at: string; limit: string; operation: string }[];
}

describe('tollgate audit over every tenant', () => {
  it('audits every tenant with an account, lists the drift and exits 1 when there is any', async () => {
    const plan = uniqueTenant('au');
    await ok('mutation($p: String!) { applyPlan(plan: $p) { version } }', { p: planOf(plan, 1, 7_000) });
    const tenants = [uniqueTenant('aua'), uniqueTenant('aub')];
    for (const tenant of tenants) {
      await ok('mutation($id: String!, $plan: String) { createTenant(id: $id, plan: $plan) { id } }', { id: tenant, plan });
      const price = { currency: 'EUR', baseFeeMicros: 0, includedUnits: 0, tiers: [{ unitPriceMicros: 1 }] };
      await ok('mutation($input: AccountInput!) { putAccount(input: $input) { tenant } }', {
        input: { tenant, billingPeriod: MONTH, price },
      });
    }
    // January 2020: a period no test writes to, so every tenant of the stack audits at zero drift there
    const period = '2020-01-15T00:00:00.000Z';
    const clean = await tollgateBin(['audit', '--period', period, '--json']);
    expect(clean.code, clean.err).toBe(0);
    const audits = JSON.parse(clean.out) as { tenant: string; drift: number; status: string }[];
    expect(audits.map((audit) => audit.tenant)).toEqual(expect.arrayContaining(tenants));
    expect(audits.filter((audit) => tenants.includes(audit.tenant)).map((audit) => [audit.status, audit.drift])).toEqual([
      ['audited', 0],
      ['audited', 0],
    ]);

    // 5 units admitted in that period that the ledger never got: drift, listed, exit 1
    const redis = new Redis(testStack().redisUrl);
    const key = admittedKey(shardOf(parseTenantId(tenants[1] ?? ''), 256), parseTenantId(tenants[1] ?? ''), Date.UTC(2020, 0, 1));
    try {
      await redis.incrby(key, 5);
      const drifted = await tollgateBin(['audit', '--period', period]);
      expect(drifted.code).toBe(1);
      expect(drifted.out).toContain(`DRIFT: ${tenants[1] ?? ''}: 5 units`);
      expect(drifted.out).not.toContain(`DRIFT: ${tenants[0] ?? ''}`);
      expect(drifted.err).toMatch(/drift found in 1 of \d+ tenants/);
      const one = await tollgateBin(['audit', '--tenant', tenants[1] ?? '', '--period', period, '--json']);
      expect(one.code).toBe(1);
      expect(JSON.parse(one.out)).toMatchObject({ tenant: tenants[1], drift: 5 });
    } finally {
      await redis.del(key);
      redis.disconnect();
    }
  });
});
