/**
 * The `tollgate` CLI's admin commands (its entry `runCli` in this process, and bin/tollgate.mjs spawned as
 * a user runs it for the exit codes and output of a real process) against a real API
 * process: tenants, keys, accounts, corrections, audit-log and admin-tokens, each with bad input (exit
 * code 2 and the message), a refused token and an unreachable API (exit 1). Keys and secrets are printed
 * only when made.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../infra/services.js';
import { runCli } from '../../src/cli/tollgate.js';
import { allocateShards, tenantInShards } from '../support/allocate.js';
import { startApiServer, storeTenantPlan, type ApiServer } from '../support/api-server.js';
import { slowBucket } from '../support/graphql.js';
import { waitFor } from '../support/poll.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SHARDS = 16_384;
const range = allocateShards(16);
const QUERY = JSON.stringify({ query: '{ products(first: 6) { nodes { id } } }' });

let scratch: string;
let api: ApiServer;
let token: string;
let planId: string;

interface Run {
  code: number;
  out: string;
  err: string;
}

/** The CLI as a user runs it: `node bin/tollgate.mjs …` in its own process (a few seconds each on 2 cores). */
function tollgateBin(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolveRun) => {
    execFile(
      process.execPath,
      ['bin/tollgate.mjs', ...args],
      {
        cwd: REPO_ROOT,
        env: { PATH: process.env['PATH'] ?? '', TOLLGATE_ADMIN_URL: api.baseUrl, TOLLGATE_ADMIN_TOKEN: token, ...env },
        timeout: 60_000,
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
        resolveRun({ code, out: stdout, err: stderr });
      },
    );
  });
}

/** The same CLI entry (`runCli`, what bin/tollgate.mjs runs) in this process, over real sockets to the API. */
async function tollgate(args: string[], env: Record<string, string> = {}): Promise<Run> {
  let out = '';
  let err = '';
  const code = await runCli(args, {
    out: (text) => (out += `${text}\n`),
    err: (text) => (err += `${text}\n`),
    env: { TOLLGATE_ADMIN_URL: api.baseUrl, TOLLGATE_ADMIN_TOKEN: token, ...env },
    runApiProcess: () => Promise.reject(new Error('not here')),
  });
  return { code, out, err };
}

async function status(key: string): Promise<number> {
  const response = await fetch(`${api.baseUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: QUERY,
  });
  await response.arrayBuffer();
  return response.status;
}

const keyIn = (run: Run): string => /key \(shown once, store it now\): (tg_\S+)/.exec(run.out)?.[1] ?? '';

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'admin-cli-'));
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
  planId = `p-${(await storeTenantPlan([slowBucket(1_000_000)])).tenant}`;
}, 180_000);

afterAll(async () => {
  await api?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

describe('tollgate tenants and keys', () => {
  it('creates, lists, suspends and resumes tenants; creates, lists, rotates and revokes keys', async () => {
    const tenant = tenantInShards(range, 'cli');
    const created = await tollgate(['tenants', 'create', tenant, '--plan', planId]);
    expect(created).toMatchObject({ code: 0 });
    expect(created.out).toMatch(new RegExp(`${tenant}\\s+active\\s+${planId}`));
    const again = await tollgateBin(['tenants', 'create', tenant]);
    expect(again.code).toBe(2);
    expect(again.err).toContain(`tollgate tenants create: CONFLICT: tenant ${tenant} exists`);
    expect((await tollgate(['tenants', 'create', 'Bad Id'])).err).toContain('INVALID_ID');

    const key = await tollgateBin(['keys', 'create', tenant, 'k1']);
    expect(key.code).toBe(0);
    const first = keyIn(key);
    expect(first).toMatch(/^tg_/);
    await waitFor('the new key to work', async () => (await status(first)) === 200);
    const listed = await tollgate(['keys', 'list', tenant]);
    expect(listed.out).toMatch(/KEYID\s+PLAN\s+FINGERPRINT/);
    expect(listed.out).toContain('k1');
    expect(listed.out).not.toContain(first);

    const suspended = await tollgate(['tenants', 'suspend', tenant]);
    expect(suspended.out).toContain('suspended');
    await waitFor('the suspension', async () => (await status(first)) === 403);
    const page = JSON.parse((await tollgate(['tenants', 'list', '--status', 'suspended', '--first', '500', '--json'])).out) as {
      items: { id: string }[];
    };
    expect(page.items.map((item) => item.id)).toContain(tenant);
    await tollgate(['tenants', 'resume', tenant]);
    await waitFor('the resumption', async () => (await status(first)) === 200);

    const noOverlap = await tollgate(['keys', 'rotate', tenant, 'k1', 'k2']);
    expect(noOverlap).toMatchObject({ code: 2, err: expect.stringContaining('--overlap <n> is required') as unknown });
    const rotated = await tollgate(['keys', 'rotate', tenant, 'k1', 'k2', '--overlap', '0']);
    const second = keyIn(rotated);
    await waitFor('the rotation', async () => (await status(first)) === 401 && (await status(second)) === 200);
    expect((await tollgate(['keys', 'revoke', tenant, 'k2'])).code).toBe(0);
    await waitFor('the revocation', async () => (await status(second)) === 401);
    const missing = await tollgate(['keys', 'revoke', tenant, 'k9']);
    expect(missing).toMatchObject({ code: 2, err: expect.stringContaining('NOT_FOUND') as unknown });

    const log = await tollgate(['audit-log', '--tenant', tenant]);
    expect(log.code).toBe(0);
    expect(log.out).toMatch(/tenant\.resume[\s\S]*tenant\.suspend[\s\S]*tenant\.create/);
    const keyLog = JSON.parse((await tollgate(['audit-log', '--target', `key/${tenant}/`, '--json'])).out) as {
      items: { action: string }[];
    };
    expect(keyLog.items.map((entry) => entry.action)).toEqual(['key.revoke', 'key.rotate', 'key.create']);
  }, 240_000);
});

describe('tollgate accounts and corrections', () => {
  it('sets and shows an account (secret write-only), refuses a disagreeing period, posts a correction', async () => {
    const tenant = tenantInShards(range, 'cli');
    expect((await tollgate(['tenants', 'create', tenant, '--plan', planId])).code).toBe(0);
    const created = await tollgate(['keys', 'create', tenant, 'k1']);
    expect(created.code).toBe(0);
    const secret = 'whsec-cli-0123456789';
    const daily = await tollgate(['accounts', 'set', tenant, '--period', 'day', '--currency', 'EUR', '--unit-price-micros', '1']);
    expect(daily.code).toBe(2);
    expect(daily.err).toContain('ACCOUNT_INVALID');
    const set = await tollgate([
      'accounts',
      'set',
      tenant,
      '--period',
      'month',
      '--currency',
      'EUR',
      '--unit-price-micros',
      '2',
      '--webhook-url',
      'http://127.0.0.1:9/hook',
      '--webhook-secret',
      secret,
    ]);
    expect(set.code).toBe(0);
    expect(set.out).toContain('month, anchor day 1, UTC');
    const shown = await tollgate(['accounts', 'show', tenant, '--json']);
    expect(JSON.parse(shown.out)).toMatchObject({ tenant, hasWebhookSecret: true });
    expect(shown.out + set.out).not.toContain(secret);
    expect((await tollgate(['accounts', 'set', tenant, '--period', 'month'])).err).toContain('--price-file');

    const posted = await tollgate(['corrections', 'post', tenant, '--id', 'c1', '--units', '10', '--reason', 'ticket 1']);
    expect(posted.code).toBe(0);
    expect(posted.out).toMatch(/correction\.c1\s+\S+\s+true/);
    expect((await tollgate(['corrections', 'post', tenant, '--id', 'c1', '--units', '10', '--reason', 'ticket 1'])).out).toMatch(/false/);
    const zero = await tollgate(['corrections', 'post', tenant, '--id', 'c2', '--units', '0', '--reason', 'x']);
    expect(zero).toMatchObject({ code: 2, err: expect.stringContaining('--units "0": must be a non-zero integer') as unknown });
    const badId = await tollgate(['corrections', 'post', tenant, '--id', 'Bad Id', '--units', '3', '--reason', 'x']);
    expect(badId).toMatchObject({ code: 2, err: expect.stringContaining('INVALID_INPUT') as unknown });

    // the audit: the correction is counted and in flight (no pump here), at zero drift
    const audit = await tollgate(['audit', '--tenant', tenant, '--json']);
    expect(audit.code).toBe(0);
    expect(JSON.parse(audit.out)).toMatchObject({ tenant, status: 'audited', admitted: 10, ledgered: 0, inFlight: 10, drift: 0 });
    expect((await tollgate(['audit', '--tenant', tenant])).out).toMatch(/audited\s+10\s+0\s+10\s+0/);
    expect((await tollgate(['audit', '--tenant', tenant, '--period', 'not-a-date'])).code).toBe(2);
    expect((await tollgate(['audit', '--tenant', tenantInShards(range, 'none')])).err).toContain('NOT_FOUND');

    // quote: the operation's cost for the key's plan, line by line; a broken document exits 2
    const operation = join(scratch, 'op.graphql');
    writeFileSync(operation, '{ products(first: 6) { nodes { id } } }');
    const quote = await tollgate(['quote', operation, '--key', keyIn(created)]);
    expect(quote.code).toBe(0);
    expect(quote.out).toContain('total: 7 units (query)');
    expect(quote.out).toMatch(/PATH\s+COORDINATE\s+WEIGHT\s+SIZE\s+COST/);
    writeFileSync(operation, '{ products(first: ');
    expect((await tollgate(['quote', operation, '--key', keyIn(created)])).code).toBe(2);
    expect((await tollgate(['quote', operation])).err).toContain('a tenant API key is required');

    // load: an open loop at 20/s for 2 s over the key, every request answered
    const load = await tollgate(['load', '--rate', '20', '--duration', '2', '--key', keyIn(created), '--json']);
    expect(load.code).toBe(0);
    expect(JSON.parse(load.out)).toMatchObject({ sent: 40, keys: 1, statuses: { '200': 40 } });
    expect((await tollgate(['load', '--rate', '0', '--duration', '2', '--key', keyIn(created)])).err).toContain(
      '--rate "0": must be an integer >= 1',
    );
    expect((await tollgate(['load', '--rate', '5', '--duration', '1', '--keys-file', join(scratch, 'none.json')])).code).toBe(2);
  }, 240_000);
});

describe('tollgate plans', () => {
  it('applies, diffs, lists and versions plans from JSON and YAML files; bad files and plans exit 2', async () => {
    const id = tenantInShards(range, 'plan');
    const bucket = {
      id: 'burst',
      scope: 'apiKey',
      mode: 'hard',
      onDeciderDown: 'open',
      algorithm: { kind: 'token-bucket', capacity: 100, refillAmount: 1, refillPeriodMs: 1000 },
    };
    const plan = {
      id,
      version: 1,
      billingPeriod: { unit: 'month', anchorDay: 1, timeZone: 'UTC' },
      maxCostPerOperation: 50,
      limits: [bucket],
    };
    const v1 = join(scratch, 'plan-v1.json');
    writeFileSync(v1, JSON.stringify(plan));
    const v2 = join(scratch, 'plan-v2.yaml');
    writeFileSync(
      v2,
      `id: ${id}\nversion: 2\nbillingPeriod: { unit: month, anchorDay: 1, timeZone: UTC }\nmaxCostPerOperation: 60\nlimits:\n  - ${JSON.stringify(bucket)}\n`,
    );
    const applied = await tollgate(['plans', 'apply', v1]);
    expect(applied.code).toBe(0);
    expect(applied.out).toMatch(new RegExp(`${id}\\s+1`));
    const diff = await tollgate(['plans', 'diff', v2]);
    expect(diff.out).toContain(`plan ${id}: stored v1 -> v2`);
    expect(diff.out).toMatch(/maxCostPerOperation\s+50\s+60/);
    expect((await tollgate(['plans', 'apply', v2])).code).toBe(0);
    expect((await tollgate(['plans', 'list'])).out).toMatch(new RegExp(`${id}\\s+2`));
    const versions = JSON.parse((await tollgate(['plans', 'versions', id, '--json'])).out) as { version: number }[];
    expect(versions.map((version) => version.version)).toEqual([1, 2]);
    const stale = await tollgate(['plans', 'apply', v1]);
    expect(stale).toMatchObject({ code: 2, err: expect.stringContaining('CONFLICT') as unknown });
    const bad = join(scratch, 'bad.json');
    writeFileSync(bad, JSON.stringify({ ...plan, version: 3, limits: [{ ...bucket, mode: 'strict' }] }));
    const invalid = await tollgate(['plans', 'apply', bad]);
    expect(invalid).toMatchObject({
      code: 2,
      err: expect.stringContaining('limits[0].mode must be hard, soft, defer or shadow') as unknown,
    });
    const broken = join(scratch, 'broken.json');
    writeFileSync(broken, '{');
    expect(await tollgate(['plans', 'apply', broken])).toMatchObject({ code: 2, err: expect.stringContaining('not JSON') as unknown });
    expect(await tollgate(['plans', 'apply', join(scratch, 'missing.json')])).toMatchObject({
      code: 2,
      err: expect.stringContaining('ENOENT') as unknown,
    });
  }, 240_000);
});

describe('tollgate admin-tokens and failures', () => {
  it('creates, lists and revokes admin tokens; a refused token and an unreachable API exit 1', async () => {
    const created = await tollgate(['admin-tokens', 'create', 'ops-cli']);
    const second = /token \(shown once, store it now\): (tga_\S+)/.exec(created.out)?.[1] ?? '';
    expect(second).toMatch(/^tga_/);
    expect((await tollgate(['tenants', 'list'], { TOLLGATE_ADMIN_TOKEN: second })).code).toBe(0);
    const list = await tollgate(['admin-tokens', 'list']);
    expect(list.out, list.err).toContain('ops-cli');
    expect((await tollgate(['admin-tokens', 'revoke', 'ops-cli'])).code).toBe(0);
    const refused = await tollgateBin(['tenants', 'list'], { TOLLGATE_ADMIN_TOKEN: second });
    expect(refused).toMatchObject({ code: 1, err: expect.stringContaining('admin authentication failed') as unknown });
    const port = await freePort();
    const unreachable = await tollgateBin(['tenants', 'list', '--url', `http://127.0.0.1:${port}`]);
    expect(unreachable).toMatchObject({ code: 1, err: expect.stringContaining('cannot reach the admin API') as unknown });
    const noToken = await tollgate(['tenants', 'list'], {
      TOLLGATE_ADMIN_TOKEN: '',
      TOLLGATE_ADMIN_TOKEN_FILE: join(scratch, 'none.json'),
    });
    expect(noToken).toMatchObject({ code: 2, err: expect.stringContaining('no admin token') as unknown });
    expect((await tollgate(['keys', 'frobnicate'])).code).toBe(2);
    expect((await tollgate(['keys', 'list'])).err).toContain('expected <tenant>, got 0');
    expect((await tollgate(['tenants', 'list', '--status', 'sleeping'])).code).toBe(2);
    expect((await tollgate(['tenants', '--help'])).out).toContain('tollgate tenants suspend <tenant>');
  }, 240_000);
});
