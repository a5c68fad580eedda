/**
 * The API process as `npm start` runs it (`src/graphql/server.ts` in its own
 * process, pointed at the test stack or at a Redis of the test's own), a plan
 * and key of the test's own in the config table it follows, and the helpers to
 * fire concurrent requests at it over real sockets and read its `/metrics`.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../infra/services.js';
import type { LimitSpec } from '../../src/decider/index.js';
import { DynamoConfigStore, type Criticality } from '../../src/graphql/index.js';
import { createDynamoClient } from '../../src/metering/index.js';
import { parsePlanId } from '../../src/shared/index.js';
import { waitFor } from './poll.js';
import { stackEnv, testStack, uniqueTenant } from './stack.js';
import { MONTH } from './time.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A running API process. */
export interface ApiServer {
  baseUrl: string;
  child: ChildProcessByStdio<null, Readable, Readable>;
  /** What it printed so far (stdout and stderr). */
  output: () => string;
  /** SIGTERM, and resolves with its exit code (SIGKILL after 15 s). */
  stop: () => Promise<number | null>;
}

/**
 * Spawns the API with the test stack's env plus `env`, its spool and keys file under `scratch`, no demo seed;
 * resolves once it listens. The port is free when chosen but the API listens only after its jobs worker starts
 * (seconds on 2 cores), so a port taken meanwhile (EADDRINUSE) is retried with another, twice.
 */
export async function startApiServer(input: ApiServerInput): Promise<ApiServer> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await spawnApiServer(input);
    } catch (error) {
      if (attempt === 3 || !(error instanceof Error) || !error.message.includes('EADDRINUSE')) throw error;
    }
  }
}

/** What to spawn: the API entry by default, or `command` (e.g. the `tollgate gateway` CLI) with the same env. */
export interface ApiServerInput {
  scratch: string;
  env?: Record<string, string>;
  /** Node arguments of the process. @default ['--import', 'tsx', 'src/graphql/server.ts'] */
  command?: string[];
}

async function spawnApiServer(input: ApiServerInput): Promise<ApiServer> {
  const port = await freePort();
  const child = spawn(process.execPath, input.command ?? ['--import', 'tsx', 'src/graphql/server.ts'], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env['PATH'] ?? '',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      ...stackEnv(),
      API_PORT: String(port),
      API_DEMO_SEED: 'false',
      API_DEMO_KEYS_FILE: join(input.scratch, 'keys.json'),
      DECIDER_SPOOL_PATH: join(input.scratch, 'spool'),
      JOBS_TASK_QUEUE: `api-server-${port}`,
      LOG_LEVEL: 'info',
      ...input.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolveExit) => child.on('exit', resolveExit));
  await waitFor('the API to listen', () => {
    if (child.exitCode !== null) throw new Error(`the API exited ${child.exitCode}:\n${output}`);
    return output.includes('api listening');
  });
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    child,
    output: () => output,
    stop: async () => {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/**
 * Stores a plan of `limits` (monthly billing, `criticality` when given) and one key for `tenant` (default a fresh
 * one) in the stack's config table.
 */
export async function storeTenantPlan(
  limits: LimitSpec[],
  options: { criticality?: Criticality; tenant?: string } = {},
): Promise<{ tenant: string; key: string }> {
  const stack = testStack();
  const dynamo = createDynamoClient({ endpoint: stack.dynamodbEndpoint, region: stack.dynamodbRegion });
  try {
    const store = new DynamoConfigStore(dynamo, { tablePrefix: stack.tablePrefix });
    const tenant = options.tenant ?? uniqueTenant('burst');
    const planId = `p-${tenant}`;
    const plan = { id: parsePlanId(planId), version: 1, limits, billingPeriod: MONTH, maxCostPerOperation: 10_000 };
    await store.putPlan(options.criticality === undefined ? plan : { ...plan, criticality: options.criticality }, Date.now());
    const { key } = await store.addKey({ tenant, keyId: 'k1', planId, nowMs: Date.now() });
    return { tenant, key };
  } finally {
    dynamo.destroy();
  }
}

/**
 * Sends `count` POSTs of `body` to `/graphql` at once, each on its own socket (no pooling: every
 * request is concurrent on the wire), and answers their status codes in order.
 */
export function burst(input: { baseUrl: string; key: string; body: string; count: number }): Promise<number[]> {
  return burstResponses(input).then((responses) => responses.map((response) => response.status));
}

/** As {@link burst}, with each response's body. */
export function burstResponses(input: {
  baseUrl: string;
  key: string;
  body: string;
  count: number;
}): Promise<{ status: number; body: string }[]> {
  const url = new URL('/graphql', input.baseUrl);
  const one = (): Promise<{ status: number; body: string }> =>
    new Promise((resolveResponse, reject) => {
      const req = httpRequest(
        url,
        {
          method: 'POST',
          agent: false,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(input.body),
            authorization: `Bearer ${input.key}`,
          },
        },
        (response) => {
          let body = '';
          response.on('data', (chunk: Buffer) => (body += chunk.toString()));
          response.on('end', () => resolveResponse({ status: response.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.end(input.body);
    });
  return Promise.all(Array.from({ length: input.count }, one));
}

/** The sum of a counter's samples whose labels match `labels` (e.g. `kind="degraded-closed"`), read from `/metrics`. */
export async function metricSum(baseUrl: string, name: string, labels: RegExp = /.*/): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match?.[1] === name && labels.test(match[2] ?? '')) sum += Number(match[3]);
  }
  return sum;
}
