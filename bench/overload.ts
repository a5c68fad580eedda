/**
 * The overload benchmark (issue 14): the API process as `npm start` runs it (`src/graphql/server.ts` under tsx,
 * default admission bounds), on the bench's Redis, DynamoDB Local of its own (in memory: the config table with one
 * plan and key), and no Temporal (nothing here defers: the jobs worker keeps retrying in the background).
 * 1. `burst_degraded_decisions`: bursts of 50, 200 and 1,000 concurrent requests (each on its own socket) from one
 *    client while Redis is healthy; the decisions the process made in degraded mode (`tollgate_decisions_total`
 *    kinds `degraded-*`), summed. Target 0: a busy process sheds, it never switches limits off.
 * 2. `overload_goodput_ratio`: the instance's capacity C (admitted requests/s, closed loop, 96 connections (the default bound)), then
 *    open loop (requests sent on schedule whatever the answers) at C and at 2C; admitted/s at 2C over admitted/s at
 *    C. Target >= 0.9: shedding the excess keeps the instance doing useful work instead of collapsing.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { REPO_ROOT, freePort, localDynamoClient, startDynamo, stopProcess, type ManagedProcess } from '../infra/services.js';
import { ensureTables } from '../infra/tables.js';
import { DynamoConfigStore } from '../src/graphql/index.js';
import { parseLimitId, parsePlanId } from '../src/shared/index.js';
import type { Figure } from './graphql.js';

const require = createRequire(import.meta.url);
interface AutocannonResult {
  requests: { total: number };
  duration: number;
  statusCodeStats?: Record<string, { count: number }>;
}
type Autocannon = (options: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = require('autocannon') as Autocannon;

const TABLE_PREFIX = 'bench-overload-';
/** 7 units: a connection of 6 products (nothing to refund). */
const BODY = JSON.stringify({ query: '{ products(first: 6) { nodes { id } } }' });
const BURSTS = [50, 200, 1_000];
const MONTH = { unit: 'month', anchorDay: 1, timeZone: 'UTC' } as const;

/** Stores the one plan (default criticality, limits far above the load, degraded decisions refused) and its key. */
async function storePlan(endpoint: string): Promise<string> {
  const dynamo = localDynamoClient(endpoint);
  try {
    await ensureTables(dynamo, TABLE_PREFIX);
    const store = new DynamoConfigStore(dynamo, { tablePrefix: TABLE_PREFIX });
    const limit = {
      id: parseLimitId('bucket'),
      scope: 'tenant' as const,
      algorithm: { kind: 'token-bucket' as const, capacity: 1_000_000_000, refillAmount: 1_000_000, refillPeriodMs: 1_000 },
      mode: 'hard' as const,
      onDeciderDown: 'closed' as const,
    };
    await store.putPlan(
      { id: parsePlanId('overload'), version: 1, limits: [limit], billingPeriod: MONTH, maxCostPerOperation: 10_000 },
      Date.now(),
    );
    return (await store.addKey({ tenant: 'overload', keyId: 'k1', planId: 'overload', nowMs: Date.now() })).key;
  } finally {
    dynamo.destroy();
  }
}

async function startApi(input: { redisPort: number; dynamoEndpoint: string; scratch: string }): Promise<{
  port: number;
  child: ChildProcessByStdio<null, Readable, Readable>;
}> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/graphql/server.ts'], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env['PATH'] ?? '',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      REDIS_URL: `redis://127.0.0.1:${input.redisPort}`,
      // nothing listens there: nothing of this bench defers, and the API serves without Temporal
      TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
      DYNAMODB_ENDPOINT: input.dynamoEndpoint,
      DYNAMODB_REGION: 'local',
      DYNAMODB_TABLE_PREFIX: TABLE_PREFIX,
      API_PORT: String(port),
      API_DEMO_SEED: 'false',
      API_DEMO_KEYS_FILE: join(input.scratch, 'keys.json'),
      DECIDER_SPOOL_PATH: join(input.scratch, 'spool'),
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 120_000;
  while (!output.includes('api listening')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the API did not start:\n${output}`);
    await new Promise((resolveWait) => setTimeout(resolveWait, 100));
  }
  return { port, child };
}

/** The sum of a metric's samples whose labels match, from `/metrics`. */
async function metricSum(port: number, name: string, labels: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match?.[1] === name && labels.test(match[2] ?? '')) sum += Number(match[3]);
  }
  return sum;
}

/** One POST; its status (0 when the socket failed). */
function post(input: { port: number; key: string; agent: Agent | false }): Promise<number> {
  return new Promise((resolveStatus) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port: input.port,
        path: '/graphql',
        method: 'POST',
        agent: input.agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY), authorization: `Bearer ${input.key}` },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolveStatus(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolveStatus(0));
    req.end(BODY);
  });
}

/** Open loop: requests sent on schedule at `ratePerS` for `durationMs` whatever the answers; admitted (200) per second of schedule. */
async function openLoop(input: {
  port: number;
  key: string;
  ratePerS: number;
  durationMs: number;
}): Promise<{ admittedPerS: number; shed: number; sent: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 2_048 });
  const pending: Promise<number>[] = [];
  const started = performance.now();
  while (performance.now() - started < input.durationMs) {
    const due = Math.floor(((performance.now() - started) / 1000) * input.ratePerS);
    while (pending.length < due) pending.push(post({ port: input.port, key: input.key, agent }));
    await new Promise((resolveTick) => setImmediate(resolveTick));
  }
  const statuses = await Promise.all(pending);
  agent.destroy();
  const admitted = statuses.filter((status) => status === 200).length;
  return {
    admittedPerS: admitted / (input.durationMs / 1000),
    shed: statuses.filter((status) => status === 503).length,
    sent: statuses.length,
  };
}

export async function benchOverload(input: { redisPort: number; durationMs: number }): Promise<{ lines: string[]; figures: Figure[] }> {
  const scratch = mkdtempSync(join(tmpdir(), 'tollgate-bench-overload-'));
  const started: ManagedProcess[] = [];
  let api: Awaited<ReturnType<typeof startApi>> | undefined;
  try {
    const dynamoPort = await freePort();
    started.push(await startDynamo({ dataDir: scratch, port: dynamoPort, persistent: false }));
    const dynamoEndpoint = `http://127.0.0.1:${dynamoPort}`;
    const key = await storePlan(dynamoEndpoint);
    api = await startApi({ redisPort: input.redisPort, dynamoEndpoint, scratch });
    const { port } = api;
    // warm-up: the key is looked up once and cached, the JIT warms
    await autocannon({
      url: `http://127.0.0.1:${port}/graphql`,
      method: 'POST',
      headers: headers(key),
      body: BODY,
      connections: 16,
      duration: 2,
    });
    const lines: string[] = ['| phase | sent | admitted (200) | shed (503) | degraded decisions |', '| --- | --- | --- | --- | --- |'];
    let degraded = 0;
    for (const count of BURSTS) {
      const before = await metricSum(port, 'tollgate_decisions_total', /kind="degraded/);
      const statuses = await Promise.all(Array.from({ length: count }, async () => post({ port, key, agent: false })));
      const delta = (await metricSum(port, 'tollgate_decisions_total', /kind="degraded/)) - before;
      degraded += delta;
      const tally = (status: number): number => statuses.filter((value) => value === status).length;
      lines.push(`| burst of ${count} | ${count} | ${tally(200)} | ${tally(503)} | ${delta} |`);
    }
    const closed = await autocannon({
      url: `http://127.0.0.1:${port}/graphql`,
      method: 'POST',
      headers: headers(key),
      body: BODY,
      connections: 96,
      duration: Math.max(2, Math.round(input.durationMs / 1000)),
    });
    const capacity = (closed.statusCodeStats?.['200']?.count ?? 0) / Math.max(1, closed.duration);
    lines.push(
      `| closed loop, 96 connections (the default bound) | ${closed.requests.total} | ${Math.round(capacity)}/s (capacity C) | – | – |`,
    );
    const atC = await openLoop({ port, key, ratePerS: capacity, durationMs: input.durationMs });
    const at2C = await openLoop({ port, key, ratePerS: 2 * capacity, durationMs: input.durationMs });
    lines.push(`| open loop at C | ${atC.sent} | ${Math.round(atC.admittedPerS)}/s | ${atC.shed} | – |`);
    lines.push(`| open loop at 2C | ${at2C.sent} | ${Math.round(at2C.admittedPerS)}/s | ${at2C.shed} | – |`);
    const ratio = at2C.admittedPerS / Math.max(1, atC.admittedPerS);
    return {
      lines,
      figures: [
        {
          name: 'burst_degraded_decisions',
          value: degraded,
          unit: 'decisions',
          note: 'decided in degraded mode while Redis is healthy, summed over bursts of 50/200/1,000 concurrent requests at the API process (target 0)',
        },
        {
          name: 'overload_capacity_per_second',
          value: Math.round(capacity),
          unit: 'req/s',
          note: 'admitted/s of the API process (tsx), closed loop, 96 connections (the default bound)',
        },
        {
          name: 'overload_goodput_ratio',
          value: Math.round(ratio * 1_000) / 1_000,
          unit: 'ratio',
          note: 'admitted/s at 2x capacity over admitted/s at capacity, open loop (target >= 0.9)',
        },
      ],
    };
  } finally {
    if (api !== undefined && api.child.exitCode === null) {
      const exited = new Promise((resolveExit) => api?.child.once('exit', resolveExit));
      api.child.kill('SIGTERM');
      await Promise.race([exited, new Promise((resolveWait) => setTimeout(resolveWait, 15_000))]);
      if (api.child.exitCode === null) api.child.kill('SIGKILL');
    }
    await Promise.all(started.map(async (proc) => stopProcess(proc)));
    rmSync(scratch, { recursive: true, force: true });
  }
}

function headers(key: string): Record<string, string> {
  return { 'content-type': 'application/json', authorization: `Bearer ${key}` };
}
