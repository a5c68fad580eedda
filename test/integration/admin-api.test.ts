/**
 * The admin API (`/admin/graphql`) against two real API processes sharing the stack: the first admin
 * token written at a demo-seeded start (mode 0600), one indistinguishable refusal of every admin field
 * to anonymous callers, tenant keys, revoked and wrong tokens; tenants and keys created, suspended,
 * revoked and rotated through instance A and visible on both instances (polled, never timed); the
 * audit log of every change.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildSchema } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TYPE_DEFS } from '../../src/admin/index.js';
import { parsePlan } from '../../src/graphql/index.js';
import { type ValidationError } from '../../src/shared/index.js';
import { startApiServer, storeTenantPlan, type ApiServer } from '../support/api-server.js';
import { slowBucket } from '../support/graphql.js';
import { waitFor } from '../support/poll.js';
import { uniqueTenant } from '../support/stack.js';

const QUERY = JSON.stringify({ query: '{ products(first: 6) { nodes { id } } }' });

let scratch: string;
let a: ApiServer;
let b: ApiServer;
let adminToken: string;
let planId: string;

interface GraphQLReply {
  status: number;
  body: { data?: Record<string, unknown> | null; errors?: { message: string; extensions?: { code?: string } }[] };
  text: string;
}

async function admin(server: ApiServer, query: string, variables: Record<string, unknown> = {}, token = adminToken): Promise<GraphQLReply> {
  const response = await fetch(`${server.baseUrl}/admin/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token === '' ? {} : { authorization: `Bearer ${token}` }) },
    body: JSON.stringify({ query, variables }),
  });
  const text = await response.text();
  return { status: response.status, body: JSON.parse(text) as GraphQLReply['body'], text };
}

/** The data of a call that must succeed. */
async function ok(server: ApiServer, query: string, variables: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const reply = await admin(server, query, variables);
  if (reply.body.errors !== undefined) throw new Error(`admin call failed: ${reply.text}`);
  return reply.body.data ?? {};
}

async function tenantCall(server: ApiServer, key: string): Promise<{ status: number; code: string | undefined }> {
  const response = await fetch(`${server.baseUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: QUERY,
  });
  const body = (await response.json()) as GraphQLReply['body'];
  return { status: response.status, code: body.errors?.[0]?.extensions?.code };
}

const FIXTURES = new URL('../fixtures/policies/', import.meta.url);
const MONTH = { unit: 'month', anchorDay: 1, timeZone: 'UTC' };
const planOf = (id: string, version: number, limits: unknown, maxCostPerOperation = 10_000): Record<string, unknown> => ({
  id,
  version,
  billingPeriod: MONTH,
  maxCostPerOperation,
  limits,
});
const BIG_BUCKET = {
  id: 'burst',
  scope: 'apiKey',
  algorithm: { kind: 'token-bucket', capacity: 1_000_000, refillAmount: 1, refillPeriodMs: 3_600_000 },
  mode: 'hard',
  onDeciderDown: 'open',
};

/** Polls until the key answers `status` on both instances. */
async function onBoth(what: string, key: string, status: number, code?: string): Promise<void> {
  await waitFor(`${what} on both instances`, async () => {
    const replies = await Promise.all([tenantCall(a, key), tenantCall(b, key)]);
    return replies.every((reply) => reply.status === status && (code === undefined || reply.code === code));
  });
}

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'admin-api-'));
  // instance A starts as `npm start` does (demo seeded): it writes the first admin token
  [a, b] = await Promise.all([
    startApiServer({
      scratch: join(scratch, 'a'),
      env: { API_DEMO_SEED: 'true', API_ADMIN_TOKEN_FILE: join(scratch, 'a', 'admin-token.json'), ACCOUNT_ENABLED: 'false' },
    }),
    startApiServer({ scratch: join(scratch, 'b') }),
  ]);
  adminToken = (JSON.parse(readFileSync(join(scratch, 'a', 'admin-token.json'), 'utf8')) as { token: string }).token;
  const stored = await storeTenantPlan([slowBucket(1_000_000)]);
  planId = `p-${stored.tenant}`;
}, 180_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  rmSync(scratch, { recursive: true, force: true });
});

describe('admin tokens', () => {
  it('writes the first token at a demo-seeded start, only readable by its user, never logged', async () => {
    const file = join(scratch, 'a', 'admin-token.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(adminToken).toMatch(/^tga_/);
    expect(a.output()).not.toContain(adminToken);
    const data = await ok(b, '{ whoami }');
    expect(data['whoami']).toMatch(/^first-start-/);
  });

  it('lists the demo tenants a demo-seeded start stored as entities, with their plans, audit-logged as the seed', async () => {
    // (the suite's tables are shared: other files' tenants are listed too, so the demo ones are looked up by id)
    const page = async (plan: string): Promise<{ id: string; status: string; plan: string | null }[]> =>
      (
        (await ok(b, 'query($plan: String) { tenants(plan: $plan, first: 500) { items { id status plan } } }', { plan }))['tenants'] as {
          items: { id: string; status: string; plan: string | null }[];
        }
      ).items;
    expect((await page('starter')).find((tenant) => tenant.id === 'acme')).toEqual({ id: 'acme', status: 'active', plan: 'starter' });
    expect((await page('pro')).find((tenant) => tenant.id === 'globex')).toEqual({ id: 'globex', status: 'active', plan: 'pro' });
  });

  it('refuses every admin field to anonymous callers, tenant keys, revoked and wrong tokens with one error', async () => {
    // given a tenant API key, a revoked admin token and a wrong one
    const tenantKey = (await storeTenantPlan([slowBucket(1_000)])).key;
    const created = await ok(a, 'mutation($id: String!) { createAdminToken(id: $id) { token } }', { id: uniqueTenant('tok') });
    const revokedToken = (created['createAdminToken'] as { token: string }).token;
    const revokedId = (await admin(a, '{ whoami }', {}, revokedToken)).body.data?.['whoami'];
    await ok(a, 'mutation($id: String!) { revokeAdminToken(id: $id) { isRevoked } }', { id: revokedId });
    const wrongToken = `tga_${'A'.repeat(43)}`;
    const callers = ['', tenantKey, revokedToken, wrongToken, 'not-a-token'];
    // when every field of the admin schema is called by each of them, on both instances
    const schema = buildSchema(ADMIN_TYPE_DEFS);
    const fields = [
      ...Object.keys(schema.getQueryType()?.getFields() ?? {}).map((name) => `{ ${name} }`),
      ...Object.keys(schema.getMutationType()?.getFields() ?? {}).map((name) => `mutation { ${name} }`),
    ];
    expect(fields.length).toBeGreaterThan(15);
    const replies: string[] = [];
    for (const document of fields) {
      for (const server of [a, b]) {
        const answers = await Promise.all(callers.map((token) => admin(server, document, {}, token)));
        for (const answer of answers) {
          expect(answer.status, `${document}`).toBe(401);
          replies.push(answer.text);
        }
      }
    }
    // then every refusal is the same bytes, and the same documents with a valid token reach validation instead
    expect(new Set(replies)).toEqual(new Set([replies[0]]));
    expect(JSON.parse(replies[0] ?? '{}')).toEqual({
      errors: [{ message: 'admin authentication failed', extensions: { code: 'ADMIN_UNAUTHENTICATED' } }],
    });
    const validated = await admin(a, '{ tenant }');
    expect(validated.status).not.toBe(401);
    expect(validated.body.errors?.[0]?.message).toContain('Field "tenant"');
  });
});

describe('tenants and keys', () => {
  it('creates, suspends, resumes a tenant; revokes and rotates keys; every change visible on both instances', async () => {
    const tenant = uniqueTenant('adm');
    // a tenant and a key, created through instance A
    await ok(a, 'mutation($id: String!, $plan: String) { createTenant(id: $id, plan: $plan) { id status } }', { id: tenant, plan: planId });
    const created = await ok(
      a,
      'mutation($t: String!) { createKey(tenant: $t, keyId: "k1") { key apiKey { fingerprint plan isRevoked } } }',
      { t: tenant },
    );
    const first = created['createKey'] as { key: string; apiKey: { fingerprint: string; plan: string } };
    expect(first.apiKey.plan).toBe(planId);
    await onBoth('the new key to work', first.key, 200);

    // suspend: every key refused with 403 TENANT_SUSPENDED on both instances; resume: served again
    await ok(a, 'mutation($id: String!) { suspendTenant(id: $id) { status } }', { id: tenant });
    await onBoth('the suspension', first.key, 403, 'TENANT_SUSPENDED');
    await ok(a, 'mutation($id: String!) { resumeTenant(id: $id) { status } }', { id: tenant });
    await onBoth('the resumption', first.key, 200);

    // rotate with an overlap: both keys work on both instances, then only the new one
    const rotated = await ok(
      a,
      'mutation($t: String!) { rotateKey(tenant: $t, keyId: "k1", newKeyId: "k2", overlapSeconds: 30) { key apiKey { keyId } } }',
      { t: tenant },
    );
    const second = (rotated['rotateKey'] as { key: string }).key;
    await onBoth('the rotated key to work', second, 200);
    for (const server of [a, b]) expect((await tenantCall(server, first.key)).status).toBe(200);
    const keys = (await ok(b, 'query($t: String!) { keys(tenant: $t) { keyId fingerprint expiresAt isRevoked } }', { t: tenant }))[
      'keys'
    ] as {
      keyId: string;
      expiresAt: string | null;
    }[];
    expect(keys.map((key) => key.keyId).sort()).toEqual(['k1', 'k2']);
    expect(keys.find((key) => key.keyId === 'k1')?.expiresAt).not.toBeNull();
    expect(JSON.stringify(keys)).not.toContain(second);
    await onBoth('the old key to stop after its overlap', first.key, 401, 'API_KEY_REVOKED');
    for (const server of [a, b]) expect((await tenantCall(server, second)).status).toBe(200);

    // revoke: refused on both instances
    await ok(a, 'mutation($t: String!) { revokeKey(tenant: $t, keyId: "k2") { isRevoked } }', { t: tenant });
    await onBoth('the revocation', second, 401, 'API_KEY_REVOKED');

    // the audit log lists every change, by whom
    const whoami = (await ok(a, '{ whoami }'))['whoami'];
    const log = (
      await ok(b, 'query($t: String!) { auditLog(target: $t) { items { tokenId action target before after } } }', { t: `tenant/${tenant}` })
    )['auditLog'] as { items: { tokenId: string; action: string; before: string | null; after: string | null }[] };
    expect(log.items.map((entry) => entry.action)).toEqual(['tenant.resume', 'tenant.suspend', 'tenant.create']);
    expect(log.items.every((entry) => entry.tokenId === whoami)).toBe(true);
    expect(JSON.parse(log.items[1]?.after ?? '{}')).toMatchObject({ status: 'suspended' });
    const keyLog = (await ok(a, 'query($t: String!) { auditLog(target: $t) { items { action } } }', { t: `key/${tenant}/` }))[
      'auditLog'
    ] as {
      items: { action: string }[];
    };
    expect(keyLog.items.map((entry) => entry.action)).toEqual(['key.revoke', 'key.rotate', 'key.create']);
  }, 180_000);

  it('answers bad input with its code: an unknown tenant, a duplicate key, a key without a plan', async () => {
    const tenant = uniqueTenant('adm');
    const unknown = await admin(a, 'mutation($id: String!) { suspendTenant(id: $id) { status } }', { id: tenant });
    expect(unknown.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    await ok(a, 'mutation($id: String!) { createTenant(id: $id) { id } }', { id: tenant });
    const noPlan = await admin(a, 'mutation($t: String!) { createKey(tenant: $t, keyId: "k1") { key } }', { t: tenant });
    expect(noPlan.body.errors?.[0]?.extensions?.code).toBe('INVALID_INPUT');
    await ok(a, 'mutation($t: String!, $p: String) { createKey(tenant: $t, keyId: "k1", plan: $p) { key } }', { t: tenant, p: planId });
    const twice = await admin(a, 'mutation($t: String!, $p: String) { createKey(tenant: $t, keyId: "k1", plan: $p) { key } }', {
      t: tenant,
      p: planId,
    });
    expect(twice.body.errors?.[0]?.extensions?.code).toBe('CONFLICT');
    const badId = await admin(a, 'mutation { createTenant(id: "Not An Id") { id } }');
    expect(badId.body.errors?.[0]?.extensions?.code).toBe('INVALID_ID');
  });
});

describe('plans', () => {
  it('refuses every invalid shape with every problem and its path, storing nothing', async () => {
    const id = uniqueTenant('plan');
    const names = readdirSync(FIXTURES).filter((name) => name.startsWith('invalid-'));
    expect(names.length).toBeGreaterThan(20);
    for (const name of names) {
      const limits: unknown = JSON.parse(readFileSync(new URL(name, FIXTURES), 'utf8'));
      const reply = await admin(a, 'mutation($p: String!) { applyPlan(plan: $p) { id } }', { p: JSON.stringify(planOf(id, 1, limits)) });
      let expected: string[] = [];
      try {
        parsePlan(planOf(id, 1, limits));
      } catch (error) {
        expected = (error as ValidationError).details['problems'] as string[];
      }
      expect(expected.length, name).toBeGreaterThan(0);
      const error = reply.body.errors?.[0] as
        { message: string; extensions: { code: string; details: { problems: string[] } } } | undefined;
      expect(error?.extensions.code, name).toBe('INVALID_INPUT');
      expect(error?.extensions.details.problems, name).toEqual(expected);
      expect(error?.message, name).toBe(`invalid plan:\n${expected.join('\n')}`);
    }
    // a few exactly as an operator reads them
    const mode = await admin(a, 'mutation($p: String!) { applyPlan(plan: $p) { id } }', {
      p: JSON.stringify(planOf(id, 1, JSON.parse(readFileSync(new URL('invalid-mode.json', FIXTURES), 'utf8')))),
    });
    expect(mode.body.errors?.[0]?.message).toBe('invalid plan:\nlimits[0].mode must be hard, soft, defer or shadow');
    const whole = await admin(a, 'mutation($p: String!) { applyPlan(plan: $p) { id } }', {
      p: JSON.stringify({ id: 'P!', version: 0, limits: [] }),
    });
    expect(whole.body.errors?.[0]?.message).toBe(
      'invalid plan:\nid is not a valid id\nversion must be an integer in 1..9007199254740991, got 0\nbillingPeriod must be an object\n' +
        'maxCostPerOperation must be an integer in 1..9007199254740991, got undefined',
    );
    const notJson = await admin(a, 'mutation { applyPlan(plan: "{") { id } }');
    expect(notJson.body.errors?.[0]?.message).toBe('invalid plan:\nplan: not JSON');
    expect((await ok(a, 'query($id: String!) { planVersions(id: $id) { version } }', { id }))['planVersions']).toEqual([]);
  });

  it('applies versions (older refused), diffs against the stored one, lists them; a change reaches both instances', async () => {
    const id = uniqueTenant('plan');
    const tenant = uniqueTenant('adm');
    await ok(a, 'mutation($p: String!) { applyPlan(plan: $p) { version } }', { p: JSON.stringify(planOf(id, 1, [BIG_BUCKET])) });
    await ok(a, 'mutation($id: String!, $plan: String) { createTenant(id: $id, plan: $plan) { id } }', { id: tenant, plan: id });
    const { key } = (await ok(a, 'mutation($t: String!) { createKey(tenant: $t, keyId: "k1") { key } }', { t: tenant }))['createKey'] as {
      key: string;
    };
    await onBoth('the key of plan v1', key, 200);

    // diff: what v2 changes (nothing stored)
    const v2 = planOf(id, 2, [{ ...BIG_BUCKET, algorithm: { ...BIG_BUCKET.algorithm, capacity: 500_000 } }], 1);
    const diff = (
      await ok(b, 'query($p: String!) { planDiff(plan: $p) { storedVersion newVersion changes { path before after } } }', {
        p: JSON.stringify(v2),
      })
    )['planDiff'];
    expect(diff).toEqual({
      storedVersion: 1,
      newVersion: 2,
      changes: [
        { path: 'limits[burst].algorithm.capacity', before: '1000000', after: '500000' },
        { path: 'maxCostPerOperation', before: '10000', after: '1' },
      ],
    });
    await onBoth('the key still on v1 after a diff', key, 200);

    // apply v2: every operation now costs more than the plan allows, on both instances
    await ok(a, 'mutation($p: String!) { applyPlan(plan: $p) { version } }', { p: JSON.stringify(v2) });
    await waitFor('plan v2 on both instances', async () => {
      const replies = await Promise.all([tenantCall(a, key), tenantCall(b, key)]);
      return replies.every((reply) => reply.code === 'COST_EXCEEDS_MAXIMUM');
    });
    const stale = await admin(a, 'mutation($p: String!) { applyPlan(plan: $p) { version } }', {
      p: JSON.stringify(planOf(id, 2, [BIG_BUCKET])),
    });
    expect(stale.body.errors?.[0]?.extensions?.code).toBe('CONFLICT');
    const versions = (await ok(b, 'query($id: String!) { planVersions(id: $id) { version body } }', { id }))['planVersions'] as {
      version: number;
      body: string;
    }[];
    expect(versions.map((version) => version.version)).toEqual([1, 2]);
    expect(JSON.parse(versions[1]?.body ?? '{}')).toMatchObject({ maxCostPerOperation: 1 });
    const listed = (await ok(a, '{ plans { id version problem } }'))['plans'] as { id: string; version: number; problem: string | null }[];
    expect(listed.find((plan) => plan.id === id)).toEqual({ id, version: 2, problem: null });
    const log = (await ok(a, 'query($t: String!) { auditLog(target: $t) { items { action before after } } }', { t: `plan/${id}` }))[
      'auditLog'
    ] as {
      items: { action: string; before: string | null; after: string }[];
    };
    expect(log.items).toEqual([
      { action: 'plan.apply', before: '{"version":1}', after: '{"version":2}' },
      { action: 'plan.apply', before: null, after: '{"version":1}' },
    ]);
  }, 120_000);
});
