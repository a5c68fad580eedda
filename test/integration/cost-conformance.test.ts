/**
 * Cost semantics against the real processes (issue 20):
 * - `quote` answers exactly what a request of the same operation reserves (the minimum cost included), on the API
 *   process as `npm start` runs it, over real sockets, the operations sent at once as a client would;
 * - the conformance table (test/fixtures/cost-conformance/cases.json) through the gateway: each case's schema served
 *   by an upstream yoga server, the gateway in front pricing it; the reservation it reports is the table's cost, and
 *   a refused case is a 400 with the table's code that never reaches the upstream.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSchema, createYoga } from 'graphql-yoga';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisDecider, connectDeciderRedis, type DeciderRedis } from '../../src/decider/index.js';
import { createGateway, upstreamSchemaFromSdl } from '../../src/gateway/index.js';
import { InMemoryKeyStore, InMemoryPlanStore, parsePlan } from '../../src/graphql/index.js';
import { createLogger, parseLimitId, systemClock } from '../../src/shared/index.js';
import { startApiServer, storeTenantPlan, type ApiServer } from '../support/api-server.js';
import { testConfig, uniqueTenant } from '../support/stack.js';
import { CONFORMANCE_CASES, caseSdl, type ConformanceCase } from '../fixtures/cost-conformance/index.js';

interface Body {
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
  extensions?: { cost?: { requested?: number } };
}

async function post(
  url: string,
  input: { key: string; query: string; variables?: Record<string, unknown> },
): Promise<{ status: number; body: Body }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${input.key}` },
    body: JSON.stringify({ query: input.query, variables: input.variables ?? {} }),
  });
  return { status: response.status, body: (await response.json()) as Body };
}

/** Operations on the demo schema, each with the variables a client sends. */
const DEMO_OPERATIONS: { query: string; variables?: Record<string, unknown> }[] = [
  // nothing but __typename: priced 0, reserved at the minimum (1)
  { query: '{ __typename }' },
  { query: '{ status { version } }' },
  { query: '{ products(first: 6) { nodes { id } } }' },
  {
    query: 'query P($n: Int, $r: Int) { products(first: $n) { edges { node { name reviews(first: $r) { rating } } } } }',
    variables: { n: 4, r: 3 },
  },
  {
    query: 'query S($full: Boolean!) { categories { name } products { nodes { id related @include(if: $full) { id } } } }',
    variables: { full: true },
  },
  {
    query: 'query S($full: Boolean!) { categories { name } products { nodes { id related @include(if: $full) { id } } } }',
    variables: { full: false },
  },
  {
    query:
      'fragment P on Product { reviews(first: 2) { body } } { a: product(id: "p-0001") { ...P } b: products(first: 3) { nodes { ...P } } }',
  },
];

describe('quote against the API process', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'tollgate-cost-'));
  let api: ApiServer | undefined;
  let key = '';

  beforeAll(async () => {
    ({ key } = await storeTenantPlan([
      {
        id: parseLimitId('units'),
        scope: 'tenant',
        algorithm: { kind: 'token-bucket', capacity: 1_000_000, refillAmount: 1, refillPeriodMs: 3_600_000 },
        mode: 'hard',
        onDeciderDown: 'closed',
      },
    ]));
    api = await startApiServer({ scratch });
  });

  afterAll(async () => {
    await api?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('answers for each operation exactly what a request of it reserves, the minimum cost included', async () => {
    const url = `${(api as ApiServer).baseUrl}/graphql`;
    const quoteQuery = 'query Q($q: String!, $v: JSONObject) { quote(query: $q, variables: $v) { cost } }';
    // when a client quotes every operation and sends every operation, all at once
    const [quotes, requests] = await Promise.all([
      Promise.all(
        DEMO_OPERATIONS.map((operation) =>
          post(url, { key, query: quoteQuery, variables: { q: operation.query, v: operation.variables ?? {} } }),
        ),
      ),
      Promise.all(DEMO_OPERATIONS.map((operation) => post(url, { key, ...operation }))),
    ]);
    // then every request was admitted, and each quote is what its request reserved
    const rows = DEMO_OPERATIONS.map((operation, index) => ({
      query: operation.query,
      status: requests[index]?.status,
      quoted: (quotes[index]?.body.data?.['quote'] as { cost?: number } | undefined)?.cost,
      reserved: requests[index]?.body.extensions?.cost?.requested,
    }));
    expect(rows).toEqual(rows.map((row) => ({ ...row, status: 200, quoted: row.reserved })));
    // and the minimum cost is a real floor: {  __typename } reserved 1, not 0
    expect(rows[0]?.reserved).toBe(1);
  });
});

/** A plan of one generous token bucket, so every case is admitted and its reservation reported. */
const GENEROUS_PLAN = parsePlan({
  id: 'conformance',
  version: 1,
  billingPeriod: { unit: 'month', anchorDay: 1, timeZone: 'UTC' },
  maxCostPerOperation: 1_000_000,
  limits: [
    {
      id: 'units',
      scope: 'tenant',
      mode: 'hard',
      onDeciderDown: 'closed',
      algorithm: { kind: 'token-bucket', capacity: 100_000_000, refillAmount: 1, refillPeriodMs: 3_600_000 },
    },
  ],
});

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
}

/** One schema (and cost options) of the table: its upstream, the gateway in front, and how many requests reached the upstream. */
interface Deployment {
  upstream: Server;
  gateway: Server;
  gatewayUrl: string;
  upstreamRequests: number;
}

describe('the conformance table through the gateway', () => {
  const config = testConfig();
  const keyStore = new InMemoryKeyStore();
  const deployments = new Map<string, Deployment>();
  let redis: DeciderRedis;
  let key = '';

  const deploymentKey = (row: ConformanceCase): string => `${row.schema} ${JSON.stringify(row.options)}`;

  beforeAll(async () => {
    redis = await connectDeciderRedis({ url: config.redis.url, commandTimeoutMs: 2_000 });
    ({ key } = keyStore.add({ tenant: uniqueTenant('conformance'), keyId: 'k1', planId: 'conformance' }));
    for (const row of CONFORMANCE_CASES) {
      const id = deploymentKey(row);
      if (deployments.has(id)) continue;
      // the upstream serves the case's schema with default resolvers: what it returns does not change the reservation
      const yoga = createYoga({ schema: createSchema({ typeDefs: caseSdl(row) }), logging: false });
      const deployment: Deployment = { upstream: createServer(), gateway: createServer(), gatewayUrl: '', upstreamRequests: 0 };
      deployment.upstream.on('request', (request, response) => {
        deployment.upstreamRequests += 1;
        void yoga(request, response);
      });
      const upstreamUrl = await listen(deployment.upstream);
      const gateway = createGateway({
        schema: upstreamSchemaFromSdl(caseSdl(row)),
        upstream: { url: upstreamUrl, timeoutMs: 5_000 },
        tollgate: {
          decider: new RedisDecider(redis, { shardCount: config.redis.shardCount, clock: systemClock }),
          keyStore,
          plans: new InMemoryPlanStore([GENEROUS_PLAN]),
          logger: createLogger({ level: 'silent', name: 'cost-conformance' }),
          cost: row.options,
        },
      });
      deployment.gateway.on('request', (request, response) => void gateway(request, response));
      deployment.gatewayUrl = await listen(deployment.gateway);
      deployments.set(id, deployment);
    }
  });

  afterAll(async () => {
    for (const deployment of deployments.values()) {
      await new Promise((resolve) => deployment.gateway.close(resolve));
      await new Promise((resolve) => deployment.upstream.close(resolve));
    }
    redis.disconnect();
  });

  it('reserves each case at its cost (at least the minimum, 1) and refuses each refused case with its code before the upstream', async () => {
    // when a client sends every case of the table at once
    const before = new Map([...deployments].map(([id, deployment]) => [id, deployment.upstreamRequests]));
    const answers = await Promise.all(
      CONFORMANCE_CASES.map((row) =>
        post((deployments.get(deploymentKey(row)) as Deployment).gatewayUrl, { key, query: row.operation, variables: row.variables }),
      ),
    );
    // then each priced case was admitted and reserved at max(1, cost), each refused one is a 400 with its code
    const rows = CONFORMANCE_CASES.map((row, index) => {
      const answer = answers[index];
      return {
        name: row.name,
        status: answer?.status,
        reserved: answer?.body.extensions?.cost?.requested,
        code: answer?.body.errors?.[0]?.extensions?.['code'],
      };
    });
    const expected = CONFORMANCE_CASES.map((row) =>
      row.cost === undefined
        ? { name: row.name, status: 400, reserved: undefined, code: row.error }
        : { name: row.name, status: 200, reserved: Math.max(1, row.cost), code: undefined },
    );
    // (a refused case was never decided: it reports no reservation)
    expect(rows.map((row) => (row.status === 200 ? { ...row, code: undefined } : row))).toEqual(expected);
    // and no refused case reached its upstream: each deployment saw exactly its admitted cases
    for (const [id, deployment] of deployments) {
      const admitted = CONFORMANCE_CASES.filter((row) => deploymentKey(row) === id && row.cost !== undefined).length;
      expect(deployment.upstreamRequests - (before.get(id) ?? 0), id).toBe(admitted);
    }
  });
});
