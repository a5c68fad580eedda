/**
 * The dashboard (issue 18), against the API process as `npm start` runs it (this run's Redis, DynamoDB Local of its
 * own, no Temporal: nothing here defers):
 * 1. `dashboard_js_kb_gz`: the JavaScript the first load fetches (index.html's scripts and module preloads), gzipped
 *    (level 9, as the API serves it to a gzip-only client; brotli is smaller), in kB.
 * 2. `dashboard_ready_ms`: in headless Chromium, from the Sign in click to every limit card and the projected bill
 *    filled (the tenant's plan has three limits and an account); median of 7 sign-ins, each after a sign-out.
 * 3. `operator_tenants_page_ms`: with 100,000 tenants written straight into the config table (batch writes, not
 *    100,000 admin calls), the first page (`tenants(first: 25)`) through /admin/graphql over HTTP; median of 50 after
 *    a warm-up (p99 in the table).
 * 4. `top_consumers_ms`: the admin API's `topConsumers(first: 10)` with 100,000 tenants ranked in the current period
 *    (the sorted set the API processes' activity flush keeps, filled here with one ZINCRBY per tenant), over HTTP;
 *    median of 50. `top_consumers_24h_cold_ms`: the LAST_24_HOURS window's first read (the union of 24 hourly sets,
 *    15,000 tenants in this hour's: a union is refused above 20,000 entries; reused for 10 s afterwards).
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { BatchWriteItemCommand, type AttributeValue, type DynamoDBClient, type WriteRequest } from '@aws-sdk/client-dynamodb';
import { chromium } from 'playwright-core';
import { ensureDashboardBuilt } from '../infra/dashboard-build.js';
import { REPO_ROOT, freePort, localDynamoClient, startDynamo, stopProcess, type ManagedProcess } from '../infra/services.js';
import { ensureTables } from '../infra/tables.js';
import { generateAdminToken, hashAdminToken } from '../src/admin/index.js';
import { DynamoAccountStore } from '../src/billing/index.js';
import type { LimitSpec } from '../src/decider/index.js';
import { DynamoConfigStore, putAccountSettings } from '../src/graphql/index.js';
import { DynamoAdminStore } from '../src/graphql/config/admin-store.js';
import { configTableName } from '../src/graphql/config/dynamo-config-store.js';
import { createDeciderRedis, periodAt } from '../src/decider/index.js';
import { hourRankKey, periodRankKey } from '../src/graphql/usage/rankings.js';
import { parseLimitId, parsePlanId, parseTenantId } from '../src/shared/index.js';
import type { Figure } from './graphql.js';
import type { BenchContext, BenchSection } from './run.js';

const TABLE_PREFIX = 'bench_dashboard_';
const TENANTS = 100_000;
/** Tenants in this hour's ranking (the 24-hour window merges at most 20,000 entries). */
const DAY_TENANTS = 15_000;
const MONTH = { unit: 'month', anchorDay: 1, timeZone: 'UTC' } as const;
const LIMITS: LimitSpec[] = [
  {
    id: parseLimitId('burst'),
    scope: 'tenant',
    mode: 'hard',
    onDeciderDown: 'closed',
    algorithm: { kind: 'token-bucket', capacity: 1_000, refillAmount: 100, refillPeriodMs: 1_000 },
  },
  {
    id: parseLimitId('monthly'),
    scope: 'tenant',
    mode: 'hard',
    onDeciderDown: 'closed',
    algorithm: { kind: 'period-quota', limit: 1_000_000, period: MONTH, thresholdsPercent: [80, 100] },
  },
  {
    id: parseLimitId('per-key'),
    scope: 'apiKey',
    mode: 'soft',
    onDeciderDown: 'closed',
    algorithm: { kind: 'sliding-window', limit: 5_000, windowMs: 60_000 },
  },
];

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
const p99 = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(0.99 * sorted.length) - 1)] ?? 0;
};

/** The first load's JavaScript, gzipped, bytes. */
function firstLoadJsGz(): { bytes: number; files: number } {
  const dir = join(REPO_ROOT, 'dist', 'dashboard');
  const html = readFileSync(join(dir, 'index.html'), 'utf8');
  const scripts = [...html.matchAll(/(?:src|href)="\/dashboard\/(assets\/[^"]+\.js)"/g)].map((match) => match[1] ?? '');
  return {
    bytes: scripts.reduce((sum, path) => sum + gzipSync(readFileSync(join(dir, path)), { level: 9 }).length, 0),
    files: scripts.length,
  };
}

/** 100,000 tenant items, 25 per batch write, 8 batches at once (unprocessed items retried). */
async function writeTenants(dynamo: DynamoDBClient): Promise<void> {
  const table = configTableName(TABLE_PREFIX);
  const nowMs = Date.now();
  const batches: Record<string, AttributeValue>[][] = [];
  for (let start = 0; start < TENANTS; start += 25) {
    batches.push(
      Array.from({ length: Math.min(25, TENANTS - start) }, (_, i) => ({
        pk: { S: 'tenants' },
        sk: { S: `tenant#t-${String(start + i).padStart(6, '0')}` },
        status: { S: (start + i) % 50 === 0 ? 'suspended' : 'active' },
        planId: { S: 'dash' },
        createdAtMs: { N: String(nowMs) },
        updatedAtMs: { N: String(nowMs) },
      })),
    );
  }
  const lane = async (): Promise<void> => {
    for (let batch = batches.pop(); batch !== undefined; batch = batches.pop()) {
      let requests: WriteRequest[] = batch.map((item) => ({ PutRequest: { Item: item } }));
      while (requests.length > 0) {
        const reply = await dynamo.send(new BatchWriteItemCommand({ RequestItems: { [table]: requests } }));
        requests = reply.UnprocessedItems?.[table] ?? [];
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, lane));
}

async function startApi(input: {
  redisPort: number;
  dynamoEndpoint: string;
  scratch: string;
}): Promise<{ port: number; child: ChildProcessByStdio<null, Readable, Readable> }> {
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
      API_DEMO_SEED: 'false',
      API_DEMO_KEYS_FILE: join(input.scratch, 'keys.json'),
      DECIDER_SPOOL_PATH: join(input.scratch, 'spool'),
      ACCOUNT_ENABLED: 'false',
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 120_000;
  for (;;) {
    const isUp = await fetch(`http://127.0.0.1:${port}/health`).then(
      (response) => response.ok,
      () => false,
    );
    if (isUp) return { port, child };
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the API did not start:\n${output}`);
    await new Promise((resolveWait) => setTimeout(resolveWait, 200));
  }
}

/** 100,000 tenants with units in this period's and this hour's rankings (and the period registered), pipelined. */
async function fillRankings(redisPort: number): Promise<void> {
  const redis = createDeciderRedis({ url: `redis://127.0.0.1:${redisPort}`, commandTimeoutMs: 30_000 });
  await redis.connect();
  try {
    const nowMs = Date.now();
    const period = periodAt(MONTH, nowMs);
    const periodKey = periodRankKey(period.startMs, period.endMs);
    const hourKey = hourRankKey(nowMs - (nowMs % 3_600_000));
    for (let start = 0; start < TENANTS; start += 5_000) {
      const pipeline = redis.pipeline();
      for (let i = start; i < Math.min(TENANTS, start + 5_000); i += 1) {
        const tenant = `t-${String(i).padStart(6, '0')}`;
        pipeline.zincrby(periodKey, 1 + ((i * 7_919) % 100_000), tenant);
        if (i < DAY_TENANTS) pipeline.zincrby(hourKey, 1 + ((i * 104_729) % 10_000), tenant);
      }
      await pipeline.exec();
    }
    await redis.zadd('tollgate:top:v1:{top}:periods', period.endMs, `${period.startMs}:${period.endMs}`);
  } finally {
    redis.disconnect();
  }
}

async function topConsumersTimes(base: string, token: string): Promise<{ times: number[]; coldDayMs: number; count: number }> {
  const ask = async (window: string): Promise<{ ms: number; count: number }> => {
    const startedAt = performance.now();
    const response = await fetch(`${base}/admin/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: `{ topConsumers(window: ${window}, first: 10) { tenants items { tenant units share } } }` }),
    });
    const body = (await response.json()) as { data?: { topConsumers: { tenants: number } } | null };
    const ms = performance.now() - startedAt;
    if (body.data === undefined || body.data === null) throw new Error(`topConsumers failed: ${JSON.stringify(body)}`);
    return { ms, count: body.data.topConsumers.tenants };
  };
  const cold = await ask('LAST_24_HOURS');
  for (let i = 0; i < 5; i += 1) await ask('PERIOD');
  const times: number[] = [];
  let count = 0;
  for (let i = 0; i < 50; i += 1) {
    const { ms, count: tenants } = await ask('PERIOD');
    times.push(ms);
    count = tenants;
  }
  if (cold.count !== DAY_TENANTS || count !== TENANTS) throw new Error(`ranked ${cold.count} / ${count}, not ${DAY_TENANTS} / ${TENANTS}`);
  return { times, coldDayMs: cold.ms, count };
}

async function readyTimes(base: string, key: string): Promise<number[]> {
  const browser = await chromium.launch({
    executablePath: process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox'],
  });
  try {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    const times: number[] = [];
    for (let round = 0; round < 8; round += 1) {
      await page.goto(`${base}/dashboard`);
      await page.getByLabel('API key (tenant) or admin token (operator)').fill(key);
      const startedAt = performance.now();
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page
        .locator('[data-testid=limit-card]')
        .nth(LIMITS.length - 1)
        .waitFor();
      await page.locator('[data-field=total]').waitFor();
      const elapsed = performance.now() - startedAt;
      if (round > 0) times.push(elapsed); // the first round warms the API's caches and the JIT
      await page.getByTestId('sign-out').click();
      await page.getByLabel('API key (tenant) or admin token (operator)').waitFor();
    }
    return times;
  } finally {
    await browser.close();
  }
}

async function tenantsPageTimes(base: string, token: string): Promise<{ times: number[]; count: number }> {
  const ask = async (): Promise<{ ms: number; count: number }> => {
    const startedAt = performance.now();
    const response = await fetch(`${base}/admin/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: '{ tenants(first: 25) { items { id status plan createdAt } cursor } }' }),
    });
    const body = (await response.json()) as { data?: { tenants: { items: unknown[] } } };
    const ms = performance.now() - startedAt;
    if (body.data === undefined) throw new Error(`tenants failed: ${JSON.stringify(body)}`);
    return { ms, count: body.data.tenants.items.length };
  };
  for (let i = 0; i < 5; i += 1) await ask();
  const times: number[] = [];
  let count = 0;
  for (let i = 0; i < 50; i += 1) {
    const { ms, count: items } = await ask();
    times.push(ms);
    count = items;
  }
  return { times, count };
}

export async function benchDashboard(ctx: BenchContext): Promise<BenchSection> {
  ensureDashboardBuilt();
  const js = firstLoadJsGz();
  const scratch = mkdtempSync(join(tmpdir(), 'tollgate-bench-dashboard-'));
  const started: ManagedProcess[] = [];
  let api: Awaited<ReturnType<typeof startApi>> | undefined;
  const dynamoPort = await freePort();
  const dynamoEndpoint = `http://127.0.0.1:${dynamoPort}`;
  try {
    started.push(await startDynamo({ dataDir: scratch, port: dynamoPort, persistent: false }));
    const dynamo = localDynamoClient(dynamoEndpoint);
    await ensureTables(dynamo, TABLE_PREFIX);
    const options = { tablePrefix: TABLE_PREFIX };
    const config = new DynamoConfigStore(dynamo, options);
    await config.putPlan(
      { id: parsePlanId('dash'), version: 1, limits: LIMITS, billingPeriod: MONTH, maxCostPerOperation: 10_000 },
      Date.now(),
    );
    const { key } = await config.addKey({ tenant: 'dash-tenant', keyId: 'k1', planId: 'dash', nowMs: Date.now() });
    await putAccountSettings({
      accounts: new DynamoAccountStore(dynamo, options),
      config,
      settings: {
        tenant: parseTenantId('dash-tenant'),
        billingPeriod: MONTH,
        price: { currency: 'EUR', baseFeeMicros: 1_000_000, includedUnits: 1_000, tiers: [{ unitPriceMicros: 100 }] },
      },
      nowMs: Date.now(),
    });
    const token = generateAdminToken();
    await new DynamoAdminStore(dynamo, config, options).createToken({
      tokenId: 'bench',
      hash: hashAdminToken(token),
      nowMs: Date.now(),
      audit: null,
    });
    const writeStartedAt = performance.now();
    await writeTenants(dynamo);
    const writeS = (performance.now() - writeStartedAt) / 1_000;
    dynamo.destroy();
    api = await startApi({ redisPort: ctx.redisPort, dynamoEndpoint, scratch });
    const base = `http://127.0.0.1:${api.port}`;
    const ready = await readyTimes(base, key);
    const tenants = await tenantsPageTimes(base, token);
    await fillRankings(ctx.redisPort);
    const top = await topConsumersTimes(base, token);
    const figures: Figure[] = [
      {
        name: 'dashboard_js_kb_gz',
        value: Number((js.bytes / 1_024).toFixed(1)),
        unit: 'kB',
        note: `first load, ${js.files} JS file(s), gzip -9; target ≤ 150`,
      },
      {
        name: 'dashboard_ready_ms',
        value: Math.round(median(ready)),
        unit: 'ms',
        note: 'sign-in click to every limit card and the bill filled, median of 7; target ≤ 1000',
      },
      {
        name: 'operator_tenants_page_ms',
        value: Number(median(tenants.times).toFixed(1)),
        unit: 'ms',
        note: `first page (25) of ${TENANTS.toLocaleString('en-US')} tenants via /admin/graphql, median of 50; target ≤ 300`,
      },
      {
        name: 'top_consumers_ms',
        value: Number(median(top.times).toFixed(1)),
        unit: 'ms',
        note: `topConsumers(first: 10), ${TENANTS.toLocaleString('en-US')} tenants ranked in the period, median of 50`,
      },
      {
        name: 'top_consumers_24h_cold_ms',
        value: Number(top.coldDayMs.toFixed(1)),
        unit: 'ms',
        note: `topConsumers(LAST_24_HOURS) first read: union of 24 hourly sets, ${DAY_TENANTS.toLocaleString('en-US')} tenants this hour`,
      },
    ];
    const lines = [
      '| figure | value | detail |',
      '| --- | --- | --- |',
      `| first-load JS, gzipped | ${figures[0]?.value} kB | ${js.files} file(s) |`,
      `| sign-in to cards filled | median ${figures[1]?.value} ms | min ${Math.round(Math.min(...ready))} ms, max ${Math.round(Math.max(...ready))} ms (7 sign-ins, headless Chromium) |`,
      `| tenants first page, ${TENANTS.toLocaleString('en-US')} tenants | median ${figures[2]?.value} ms | p99 ${p99(tenants.times).toFixed(1)} ms, ${tenants.count} items; the 100,000 written in ${writeS.toFixed(0)} s by batch writes |`,
      `| top consumers, ${TENANTS.toLocaleString('en-US')} tenants ranked | median ${figures[3]?.value} ms | p99 ${p99(top.times).toFixed(1)} ms; last 24 h first read (24-set union) ${figures[4]?.value} ms |`,
    ];
    return { lines, figures };
  } finally {
    if (api !== undefined) {
      api.child.kill('SIGTERM');
      await new Promise((resolveExit) => api?.child.once('exit', resolveExit));
    }
    for (const proc of started) await stopProcess(proc, 10_000);
    rmSync(scratch, { recursive: true, force: true });
  }
}
