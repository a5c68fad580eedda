/**
 * Gateway mode as a real process: `tollgate gateway` (the CLI, which runs the
 * same API process `npm start` runs) in front of a yoga upstream started by
 * the test, priced by the upstream's pinned SDL and a cost file, against the
 * test stack. Clients reach it over real sockets; its usage events are pumped
 * into the ledger by a metering worker process. The upstream counts what
 * reaches it, and can be made slow, failing (500) or gone.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { createSchema, createYoga } from 'graphql-yoga';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LimitSpec } from '../../src/decider/index.js';
import { COST_DIRECTIVES_SDL } from '../../src/graphql/index.js';
import { DynamoLedgerStore, createDynamoClient } from '../../src/metering/index.js';
import { parseLimitId, type TenantId } from '../../src/shared/index.js';
import { ensureMeterWorkflows, meterPumpId } from '../../src/workflows/index.js';
import { LOGICAL_SHARDS, allocateShards, tenantInShards } from '../support/allocate.js';
import { burstResponses, startApiServer, storeTenantPlan, type ApiServer } from '../support/api-server.js';
import { waitFor } from '../support/poll.js';
import { testStack } from '../support/stack.js';
import { closeAll } from '../support/teardown.js';
import { MONTH, monthStartMs, sleep } from '../support/time.js';
import { killWorkerProcesses, startWorkerProcess } from '../support/worker-process.js';

const stack = testStack();
// this file's own shard: its tenants' usage is pumped by this file's worker only
const shards = allocateShards(1);
const taskQueue = `gateway-process-${shards.first}`;

/** The upstream's own SDL: at most 8 books exist, each costs 1; the cost file prices an author 4. */
const UPSTREAM_SDL = `${COST_DIRECTIVES_SDL}
  type Author { name: String! }
  type Book { title: String!  author: Author! }
  type Query { books(first: Int!): [Book!]! @listSize(slicingArguments: ["first"]) }`;
const COSTS = 'Book.author: { weight: 4 }\n';

type Mode = 'ok' | 'slow' | 'fail';

/** The upstream: a yoga server of its own schema; counts forwarded operations and introspections. */
function startUpstream(state: { mode: Mode; forwarded: number; introspections: number; tenants: string[] }): Server {
  const yoga = createYoga({
    schema: createSchema({
      typeDefs: UPSTREAM_SDL,
      resolvers: {
        Query: {
          books: (_: unknown, { first }: { first: number }) =>
            Array.from({ length: Math.min(first, 8) }, (_, index) => ({ title: `book ${index}`, author: { name: `author ${index}` } })),
        },
      },
    }),
    logging: false,
  });
  return createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      if (body.includes('__schema')) state.introspections += 1;
      else {
        state.forwarded += 1;
        state.tenants.push(String(request.headers['x-tenant-id']));
      }
      if (state.mode === 'fail') {
        response.writeHead(500).end('boom');
        return;
      }
      const delay = state.mode === 'slow' && !body.includes('__schema') ? sleep(3_000) : Promise.resolve();
      // the body was read here: yoga gets it again as a fresh request
      void delay.then(async () => {
        const answer = await yoga.fetch(`http://upstream${request.url ?? '/graphql'}`, {
          method: request.method ?? 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json' },
          body,
        });
        response.writeHead(answer.status, { 'content-type': 'application/json' }).end(await answer.text());
      });
    });
  });
}

/** A plan of one monthly tenant quota of `limit` units, refused (not admitted) while the decider is down. */
const quota = (limit: number): LimitSpec[] => [
  {
    id: parseLimitId('monthly'),
    scope: 'tenant',
    mode: 'hard',
    onDeciderDown: 'closed',
    algorithm: { kind: 'period-quota', limit, period: MONTH, thresholdsPercent: [] },
  },
];

describe('tollgate gateway, the process, in front of an upstream', () => {
  const state = { mode: 'ok' as Mode, forwarded: 0, introspections: 0, tenants: [] as string[] };
  const upstream = startUpstream(state);
  const scratch = mkdtempSync(join(tmpdir(), 'gateway-process-'));
  const dynamo = createDynamoClient({ endpoint: stack.dynamodbEndpoint, region: stack.dynamodbRegion });
  let temporal: Connection;
  let gateway: ApiServer;
  // the tenants and keys, stored before the gateway starts (it reads the config table at start)
  let metered: { tenant: TenantId; key: string };
  let failing: { tenant: string; key: string };

  beforeAll(async () => {
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/graphql`;
    writeFileSync(join(scratch, 'schema.graphql'), UPSTREAM_SDL);
    writeFileSync(join(scratch, 'costs.yaml'), COSTS);
    const meteredTenant = tenantInShards(shards, 'gwp');
    metered = { tenant: meteredTenant, key: (await storeTenantPlan(quota(70), { tenant: meteredTenant })).key };
    failing = await storeTenantPlan(quota(30), { tenant: tenantInShards(shards, 'gwf') });
    // given the gateway started by its CLI, as an operator starts it
    gateway = await startApiServer({
      scratch,
      command: [
        'bin/tollgate.mjs',
        'gateway',
        ...['--upstream', upstreamUrl, '--schema', join(scratch, 'schema.graphql'), '--costs', join(scratch, 'costs.yaml')],
        ...['--timeout-ms', '1000', '--tenant-header', 'x-tenant-id'],
      ],
      env: { DECIDER_SHARDS: String(LOGICAL_SHARDS), TOLLGATE_READY_CACHE_MS: '3000' },
    });
    temporal = await Connection.connect({ address: stack.temporalAddress });
  }, 120_000);

  afterAll(async () => {
    killWorkerProcesses();
    await new Client({ connection: temporal, namespace: stack.temporalNamespace }).workflow
      .getHandle(meterPumpId(shards.first))
      .terminate('test over')
      .catch(() => undefined);
    await gateway.stop();
    upstream.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
    await closeAll(temporal, dynamo);
    rmSync(scratch, { recursive: true, force: true });
  });

  const ask = (key: string, query: string, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(`${gateway.baseUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers },
      body: JSON.stringify({ query }),
    });
  const errorCode = async (response: Response): Promise<string | undefined> =>
    ((await response.json()) as { errors?: { extensions?: { code?: string } }[] }).errors?.[0]?.extensions?.code;

  it('answers a burst of /ready calls with one introspection of the upstream', async () => {
    // when 20 probes arrive at once
    const before = state.introspections;
    const probes = await Promise.all(Array.from({ length: 20 }, () => fetch(`${gateway.baseUrl}/ready`)));
    // then every one is ready, and the upstream was introspected once for all of them
    expect(probes.map((probe) => probe.status)).toEqual(Array.from({ length: 20 }, () => 200));
    const report = (await probes[0]?.json()) as { checks: Record<string, { isOk: boolean }> };
    expect(report.checks['upstream']?.isOk).toBe(true);
    expect(state.introspections - before).toBe(1);
  });

  it('refunds from the real response, charges a timed-out request once however often it is retried, admits exactly floor(L/c), and ledgers it all', async () => {
    // given a tenant of this file's shard with 70 units
    const { tenant, key } = metered;
    // when it asks for 10 books with their authors (8 exist): 10 × (1 + 4) = 50 reserved
    const refunded = await ask(key, '{ books(first: 10) { title author { name } } }');
    // then it is charged the 8 the upstream returned (40) and refunded 10; the upstream saw its tenant
    expect(refunded.status).toBe(200);
    expect(((await refunded.json()) as { extensions: { cost: unknown } }).extensions.cost).toMatchObject({
      requested: 50,
      actual: 40,
      refunded: 10,
    });
    expect(state.tenants.at(-1)).toBe(tenant);
    // when a request of 15 times out upstream, and the client retries it with the same Idempotency-Key
    state.mode = 'slow';
    const forwardedBefore = state.forwarded;
    const query = '{ books(first: 3) { title author { name } } }';
    const timedOut = await ask(key, query, { 'idempotency-key': 'gw-retry-1' });
    const retried = await ask(key, query, { 'idempotency-key': 'gw-retry-1' });
    state.mode = 'ok';
    // then the first is 504 UPSTREAM_TIMEOUT, the retry gets that same answer without reaching the upstream
    expect(timedOut.status).toBe(504);
    expect(await errorCode(timedOut)).toBe('UPSTREAM_TIMEOUT');
    expect(retried.headers.get('idempotent-replayed')).toBe('true');
    expect(await errorCode(retried)).toBe('UPSTREAM_TIMEOUT');
    expect(state.forwarded - forwardedBefore).toBe(1);
    // and only the minimum (1) of the 15 stays charged, once: 70 - 40 - 1 = 29 left
    // when 15 requests of 3 units arrive at once over their own sockets
    const responses = await burstResponses({
      baseUrl: gateway.baseUrl,
      key,
      body: JSON.stringify({ query: '{ books(first: 3) { title } }' }),
      count: 15,
    });
    // then exactly floor(29 / 3) = 9 are served, the other 6 refused with 429 and never forwarded
    const statuses = responses.map((response) => response.status);
    expect(statuses.filter((status) => status === 200)).toHaveLength(9);
    expect(statuses.filter((status) => status === 429)).toHaveLength(6);
    expect(state.forwarded - forwardedBefore).toBe(1 + 9);
    // and a metering worker writes exactly what was charged into the ledger: 40 + 1 + 9 × 3
    startWorkerProcess({ TOLLGATE_TEST_TASK_QUEUE: taskQueue, DECIDER_SHARDS: String(LOGICAL_SHARDS) });
    await ensureMeterWorkflows(new Client({ connection: temporal, namespace: stack.temporalNamespace }), {
      shards: [shards.first],
      taskQueue,
      settings: { idleDelayMs: 200, iterationsPerRun: 20, activityTimeoutMs: 30_000, heartbeatTimeoutMs: 5_000 },
    });
    const ledger = new DynamoLedgerStore(dynamo, { tablePrefix: stack.tablePrefix });
    const periodStart = new Date(monthStartMs(Date.now())).toISOString();
    const balance = await waitFor(
      'the gateway usage in the ledger',
      async () => {
        const read = await ledger.getBalance({ tenant, periodStart });
        return read.amount >= 68 ? read : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    expect(balance.amount).toBe(68);
  });

  it('answers a failing upstream with 502 UPSTREAM_FAILED, an unreachable one with 502 UPSTREAM_UNAVAILABLE, each charged its minimum', async () => {
    // given a tenant with 30 units
    const { key } = failing;
    const query = '{ books(first: 5) { title } }';
    // when the upstream answers 500
    state.mode = 'fail';
    const failed = await ask(key, query);
    state.mode = 'ok';
    // then
    expect(failed.status).toBe(502);
    expect(await errorCode(failed)).toBe('UPSTREAM_FAILED');
    // when the upstream is gone
    upstream.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
    const gone = await ask(key, query);
    // then
    expect(gone.status).toBe(502);
    expect(await errorCode(gone)).toBe('UPSTREAM_UNAVAILABLE');
    // and each was charged its minimum (1) of the 5 reserved: 30 - 2 left, as the next refusal's headers say
    const refused = await ask(key, '{ books(first: 50) { title } }');
    expect(refused.status).toBe(429);
    expect(refused.headers.get('ratelimit')).toMatch(/^"monthly";r=28;t=\d+$/);
    // and /ready reports the upstream unavailable once its cached check expires
    await waitFor('/ready to report the upstream gone', async () => (await fetch(`${gateway.baseUrl}/ready`)).status === 503, {
      timeoutMs: 30_000,
      intervalMs: 500,
    });
    const report = (await (await fetch(`${gateway.baseUrl}/ready`)).json()) as { checks: Record<string, { code?: string }> };
    expect(report.checks['upstream']?.code).toBe('UPSTREAM_UNAVAILABLE');
  });
});
