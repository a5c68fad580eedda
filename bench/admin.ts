/**
 * The admin benchmark (issue 17): how long an admin change takes to be enforced by every API instance.
 * Two API processes as `npm start` runs them (`src/graphql/server.ts` under tsx), on the bench's Redis
 * and a DynamoDB Local of their own (in memory), no Temporal. Instance A writes the first admin token
 * (a demo-seeded start). Each sample is one change made through A's `/admin/graphql`, timed from just
 * before the call until BOTH instances answer a tenant request the new way (each polled every 5 ms):
 * alternately a key revocation (401 API_KEY_REVOKED) and a plan change (`maxCostPerOperation` 10,000 ->
 * 1: COST_EXCEEDS_MAXIMUM, and back). `admin_propagation_p99_ms` is the 99th percentile (target <= 1000).
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { REPO_ROOT, freePort, localDynamoClient, startDynamo, stopProcess, type ManagedProcess } from '../infra/services.js';
import { ensureTables } from '../infra/tables.js';
import type { Figure } from './graphql.js';

const TABLE_PREFIX = 'bench-admin-';
const BODY = JSON.stringify({ query: '{ products(first: 6) { nodes { id } } }' });
const SAMPLES = 40;
const POLL_MS = 5;
const MONTH = { unit: 'month', anchorDay: 1, timeZone: 'UTC' };
const LIMIT = {
  id: 'bucket',
  scope: 'tenant',
  algorithm: { kind: 'token-bucket', capacity: 1_000_000_000, refillAmount: 1_000_000, refillPeriodMs: 1_000 },
  mode: 'hard',
  onDeciderDown: 'open',
};

interface Api {
  port: number;
  child: ChildProcessByStdio<null, Readable, Readable>;
}

async function startApi(input: { redisPort: number; dynamoEndpoint: string; scratch: string; isFirst: boolean }): Promise<Api> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/graphql/server.ts'], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env['PATH'] ?? '',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      REDIS_URL: `redis://127.0.0.1:${input.redisPort}`,
      TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
      DYNAMODB_ENDPOINT: input.dynamoEndpoint,
      DYNAMODB_REGION: 'local',
      DYNAMODB_TABLE_PREFIX: TABLE_PREFIX,
      API_PORT: String(port),
      // the first instance starts as `npm start` does: it writes the admin token (no account workflows: no Temporal here)
      API_DEMO_SEED: input.isFirst ? 'true' : 'false',
      ACCOUNT_ENABLED: 'false',
      API_DEMO_KEYS_FILE: join(input.scratch, `keys-${port}.json`),
      API_ADMIN_TOKEN_FILE: join(input.scratch, 'admin-token.json'),
      DECIDER_SPOOL_PATH: join(input.scratch, `spool-${port}`),
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the API did not start:\n${output}`);
    const isUp = await fetch(`http://127.0.0.1:${port}/health`).then(
      (response) => response.ok,
      () => false,
    );
    if (isUp) return { port, child };
    await new Promise((resolveWait) => setTimeout(resolveWait, 200));
  }
}

async function admin(port: number, token: string, query: string, variables: Record<string, unknown>): Promise<Record<string, unknown>> {
  const response = await fetch(`http://127.0.0.1:${port}/admin/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const reply = (await response.json()) as { data?: Record<string, unknown>; errors?: unknown[] };
  if (reply.errors !== undefined) throw new Error(`admin call failed: ${JSON.stringify(reply.errors)}`);
  return reply.data ?? {};
}

/** The error code of a tenant request (`ok` when it was served). */
async function outcome(port: number, key: string): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: BODY,
  });
  const body = (await response.json()) as { errors?: { extensions?: { code?: string } }[] };
  return response.status === 200 ? 'ok' : (body.errors?.[0]?.extensions?.code ?? String(response.status));
}

/** Ms from `startedMs` until every instance answers `expected` for `key` (each polled every 5 ms). */
async function visibleOnAll(apis: Api[], key: string, expected: string, startedMs: number): Promise<number> {
  const seen = await Promise.all(
    apis.map(async (api) => {
      for (;;) {
        if ((await outcome(api.port, key)) === expected) return performance.now();
        if (performance.now() - startedMs > 30_000) throw new Error(`instance ${api.port} never answered ${expected}`);
        await new Promise((resolveWait) => setTimeout(resolveWait, POLL_MS));
      }
    }),
  );
  return Math.max(...seen) - startedMs;
}

const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
};

/** Alternately a revocation and a plan change; the ms each took to be enforced on both instances, by kind. */
async function measure(apis: Api[], token: string): Promise<{ revoke: number[]; plan: number[] }> {
  const [first] = apis;
  if (first === undefined) throw new Error('no instance');
  const call = (query: string, variables: Record<string, unknown>): Promise<Record<string, unknown>> =>
    admin(first.port, token, query, variables);
  const applyPlan = (version: number, maxCost: number): Promise<Record<string, unknown>> =>
    call('mutation($p: String!) { applyPlan(plan: $p) { version } }', {
      p: JSON.stringify({ id: 'bench', version, billingPeriod: MONTH, maxCostPerOperation: maxCost, limits: [LIMIT] }),
    });
  await applyPlan(1, 10_000);
  await call('mutation { createTenant(id: "bench", plan: "bench") { id } }', {});
  const samples = { revoke: [] as number[], plan: [] as number[] };
  let planVersion = 1;
  for (let index = 0; index < SAMPLES; index += 1) {
    const keyId = `k${index}`;
    const created = await call('mutation($k: String!) { createKey(tenant: "bench", keyId: $k) { key } }', { k: keyId });
    const { key } = created['createKey'] as { key: string };
    await visibleOnAll(apis, key, 'ok', performance.now());
    if (index % 2 === 0) {
      const startedMs = performance.now();
      await call('mutation($k: String!) { revokeKey(tenant: "bench", keyId: $k) { isRevoked } }', { k: keyId });
      samples.revoke.push(await visibleOnAll(apis, key, 'API_KEY_REVOKED', startedMs));
    } else {
      planVersion += 1;
      const startedMs = performance.now();
      await applyPlan(planVersion, 1);
      samples.plan.push(await visibleOnAll(apis, key, 'COST_EXCEEDS_MAXIMUM', startedMs));
      planVersion += 1;
      await applyPlan(planVersion, 10_000);
      await visibleOnAll(apis, key, 'ok', performance.now());
    }
  }
  return samples;
}

export async function benchAdmin(input: { redisPort: number }): Promise<{ lines: string[]; figures: Figure[] }> {
  const scratch = mkdtempSync(join(tmpdir(), 'tollgate-bench-admin-'));
  const started: ManagedProcess[] = [];
  const apis: Api[] = [];
  try {
    const dynamoPort = await freePort();
    started.push(await startDynamo({ dataDir: scratch, port: dynamoPort, persistent: false }));
    const dynamoEndpoint = `http://127.0.0.1:${dynamoPort}`;
    const dynamo = localDynamoClient(dynamoEndpoint);
    await ensureTables(dynamo, TABLE_PREFIX).finally(() => dynamo.destroy());
    apis.push(await startApi({ redisPort: input.redisPort, dynamoEndpoint, scratch, isFirst: true }));
    apis.push(await startApi({ redisPort: input.redisPort, dynamoEndpoint, scratch, isFirst: false }));
    const { token } = JSON.parse(readFileSync(join(scratch, 'admin-token.json'), 'utf8')) as { token: string };
    const samples = await measure(apis, token);
    const all = [...samples.revoke, ...samples.plan];
    const row = (name: string, values: number[]): string =>
      `| ${name} | ${values.length} | ${Math.round(percentile(values, 50))} | ${Math.round(percentile(values, 99))} | ${Math.round(Math.max(...values))} |`;
    return {
      lines: [
        '| change (through instance A, seen on A and B) | samples | p50 ms | p99 ms | max ms |',
        '| --- | --- | --- | --- | --- |',
        row('key revocation', samples.revoke),
        row('plan change', samples.plan),
        row('all', all),
      ],
      figures: [
        {
          name: 'admin_propagation_p99_ms',
          value: Math.round(percentile(all, 99)),
          unit: 'ms',
          note: `a key revocation or plan change made through /admin/graphql, until both API instances enforce it (${all.length} samples, polled every ${POLL_MS} ms; target <= 1000)`,
        },
      ],
    };
  } finally {
    for (const api of apis) {
      if (api.child.exitCode !== null) continue;
      const exited = new Promise((resolveExit) => api.child.once('exit', resolveExit));
      api.child.kill('SIGTERM');
      await Promise.race([exited, new Promise((resolveWait) => setTimeout(resolveWait, 15_000))]);
      if (api.child.exitCode === null) api.child.kill('SIGKILL');
    }
    await Promise.all(started.map(async (proc) => stopProcess(proc)));
    rmSync(scratch, { recursive: true, force: true });
  }
}
