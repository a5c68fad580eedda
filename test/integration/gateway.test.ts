/**
 * Gateway mode over real sockets: a client → the tollgate gateway → an
 * upstream yoga server of another schema (not the demo), against the test
 * stack's Redis. The upstream counts what reaches it, and can be made slow,
 * failing (500) or gone.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { createSchema, createYoga } from 'graphql-yoga';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisDecider, connectDeciderRedis, type DeciderRedis } from '../../src/decider/index.js';
import { applyCostFile, createGateway, introspectUpstream, parseCostFile, upstreamSchemaFromSdl } from '../../src/gateway/index.js';
import { COST_DIRECTIVES_SDL, InMemoryKeyStore, InMemoryPlanStore, parsePlan, type Plan } from '../../src/graphql/index.js';
import { createLogger, systemClock } from '../../src/shared/index.js';
import { testConfig, uniqueTenant } from '../support/stack.js';
import { sleep } from '../support/time.js';

const config = testConfig();

/** The upstream's own SDL: at most 8 books exist, each costs 1, its author 2 more. */
const UPSTREAM_SDL = `${COST_DIRECTIVES_SDL}
  type Author { name: String! }
  type Book { title: String!  author: Author! @cost(weight: 2) }
  type Query { books(first: Int!): [Book!]! @listSize(slicingArguments: ["first"]) }`;

/** A plan with one monthly tenant quota of `limit` units, refused (not admitted) while the decider is down. */
function monthlyQuotaPlan(id: string, limit: number): Plan {
  const month = { unit: 'month', anchorDay: 1, timeZone: 'UTC' } as const;
  return parsePlan({
    id,
    version: 1,
    billingPeriod: month,
    maxCostPerOperation: 1_000,
    limits: [
      {
        id: 'monthly',
        scope: 'tenant',
        mode: 'hard',
        onDeciderDown: 'closed',
        algorithm: { kind: 'period-quota', limit, period: month, thresholdsPercent: [] },
      },
    ],
  });
}

type Mode = 'ok' | 'slow' | 'fail' | 'drifted';

/** What the upstream serves after a deploy the gateway was not told about: Book.author is gone. */
const DRIFTED_SDL = `type Book { title: String! }
  type Query { books(first: Int!): [Book!]! }`;

interface UpstreamState {
  mode: Mode;
  /** Requests the upstream received, with the headers it saw. */
  seen: { headers: Record<string, string> }[];
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

function startUpstream(state: UpstreamState): Server {
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
  const drifted = createYoga({
    schema: createSchema({ typeDefs: DRIFTED_SDL, resolvers: { Query: { books: () => [] } } }),
    logging: false,
  });
  return createServer((request, response) => {
    state.seen.push({ headers: Object.fromEntries(Object.entries(request.headers).map(([name, value]) => [name, String(value)])) });
    if (state.mode === 'fail') {
      response.writeHead(500).end('boom');
      return;
    }
    const delay = state.mode === 'slow' ? sleep(2_000) : Promise.resolve();
    void delay.then(() => (state.mode === 'drifted' ? drifted(request, response) : yoga(request, response)));
  });
}

describe('the gateway in front of an upstream GraphQL server', () => {
  const state: UpstreamState = { mode: 'ok', seen: [] };
  const upstream = startUpstream(state);
  let redis: DeciderRedis;
  let gateway: Server;
  let gatewayUrl: string;
  let upstreamUrl: string;
  const keyStore = new InMemoryKeyStore();
  const plans = new InMemoryPlanStore([monthlyQuotaPlan('gold', 30)]);

  beforeAll(async () => {
    upstreamUrl = `http://127.0.0.1:${await listen(upstream)}/graphql`;
    redis = await connectDeciderRedis({ url: config.redis.url, commandTimeoutMs: 2_000 });
    const yoga = createGateway({
      schema: upstreamSchemaFromSdl(UPSTREAM_SDL),
      upstream: { url: upstreamUrl, timeoutMs: 500, forwardHeaders: ['x-trace-id'] },
      identityHeaders: { tenant: 'x-tenant-id' },
      // every /ready call checks the upstream afresh (the drift test changes it between two calls)
      readyCacheMs: 0,
      tollgate: {
        decider: new RedisDecider(redis, { shardCount: config.redis.shardCount, clock: systemClock }),
        keyStore,
        plans,
        logger: createLogger({ level: 'silent', name: 'gateway-test' }),
        random: () => 0.5,
      },
    });
    gateway = createServer((request, response) => void yoga(request, response));
    gatewayUrl = `http://127.0.0.1:${await listen(gateway)}/graphql`;
  });

  afterAll(async () => {
    await new Promise((resolve) => gateway.close(resolve));
    await new Promise((resolve) => upstream.close(resolve));
    redis.disconnect();
  });

  const ask = (key: string, query: string, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(gatewayUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers },
      body: JSON.stringify({ query }),
    });

  it("forwards an admitted operation, prices it by the upstream's directives and refunds what the upstream did not return", async () => {
    // given
    const tenant = uniqueTenant('gw');
    const { key } = keyStore.add({ tenant, keyId: 'k1', planId: 'gold' });
    state.seen = [];
    // when a client asks for 10 books with their authors (8 exist): 10 × (1 + 2) reserved
    const response = await ask(key, '{ books(first: 10) { title author { name } } }', { 'x-trace-id': 't-1', cookie: 'secret=1' });
    // then the upstream's data comes back, charged for the 8 it returned
    expect(response.status).toBe(200);
    const body = (await response.json()) as { data: { books: unknown[] }; extensions: { cost: Record<string, number> } };
    expect(body.data.books).toHaveLength(8);
    expect(body.extensions.cost).toMatchObject({ requested: 30, actual: 24, refunded: 6 });
    expect(response.headers.get('ratelimit-policy')).toMatch(/^"monthly";q=30;w=\d+$/);
    // and the upstream saw the allowed header and the caller's tenant, never the API key or the cookie
    expect(state.seen).toHaveLength(1);
    expect(state.seen[0]?.headers).toMatchObject({ 'x-trace-id': 't-1', 'x-tenant-id': tenant });
    expect(state.seen[0]?.headers['authorization']).toBeUndefined();
    expect(state.seen[0]?.headers['cookie']).toBeUndefined();
  });

  it('admits exactly floor(limit / cost) of a parallel burst, and the refused never reach the upstream', async () => {
    // given a fresh tenant with 30 units and operations of 5 (5 books exist of 5 asked: no refund)
    const tenant = uniqueTenant('gw');
    const { key } = keyStore.add({ tenant, keyId: 'k1', planId: 'gold' });
    state.seen = [];
    // when 20 arrive at once
    const responses = await Promise.all(Array.from({ length: 20 }, () => ask(key, '{ books(first: 5) { title } }')));
    // then 6 are served and forwarded, 14 refused with 429 QUOTA_EXHAUSTED
    const statuses = responses.map((response) => response.status);
    expect(statuses.filter((status) => status === 200)).toHaveLength(6);
    expect(statuses.filter((status) => status === 429)).toHaveLength(14);
    const refused = await Promise.all(
      responses
        .filter((response) => response.status === 429)
        .map(async (response) => (await response.json()) as { errors: { extensions: { code: string } }[] }),
    );
    expect(new Set(refused.map((body) => body.errors[0]?.extensions.code))).toEqual(new Set(['QUOTA_EXHAUSTED']));
    expect(state.seen).toHaveLength(6);
  });

  it.each([
    ['fail', 502, 'UPSTREAM_FAILED'],
    ['slow', 504, 'UPSTREAM_TIMEOUT'],
  ] as const)('answers an upstream that is %s with %i %s and charges only the minimum', async (mode, status, code) => {
    // given
    const tenant = uniqueTenant('gw');
    const { key } = keyStore.add({ tenant, keyId: 'k1', planId: 'gold' });
    state.mode = mode;
    // when
    const failed = await ask(key, '{ books(first: 5) { title } }');
    state.mode = 'ok';
    // then the client gets the upstream error with its code and status
    expect(failed.status).toBe(status);
    const body = (await failed.json()) as { data?: unknown; errors: { extensions: { code: string } }[] };
    expect(body.errors[0]?.extensions.code).toBe(code);
    // and of the 5 reserved only the minimum (1) stays charged: the next 5-unit request leaves 30 - 1 - 5
    const next = await ask(key, '{ books(first: 5) { title } }');
    expect(next.status).toBe(200);
    expect(next.headers.get('ratelimit')).toMatch(/^"monthly";r=24;t=\d+$/);
  });

  it('charges a failed upstream the whole reservation when the operator says so', async () => {
    // given a gateway whose failures are charged as reserved
    const tenant = uniqueTenant('gw');
    const { key } = keyStore.add({ tenant, keyId: 'k1', planId: 'gold' });
    const reserved = createGateway({
      schema: upstreamSchemaFromSdl(UPSTREAM_SDL),
      upstream: { url: upstreamUrl },
      failureCharge: 'reserved',
      tollgate: {
        decider: new RedisDecider(redis, { shardCount: config.redis.shardCount, clock: systemClock }),
        keyStore,
        plans,
        logger: createLogger({ level: 'silent', name: 'gateway-test' }),
      },
    });
    const send = (query: string): Promise<Response> =>
      Promise.resolve(
        reserved.fetch('http://gateway.test/graphql', {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
          body: JSON.stringify({ query }),
        }),
      );
    // when the upstream answers 500 to an operation of 5
    state.mode = 'fail';
    const failed = await send('{ books(first: 5) { title } }');
    state.mode = 'ok';
    // then the client gets 502 UPSTREAM_FAILED, and all 5 stay charged: 30 - 5 - 5 left after the next one
    expect(failed.status).toBe(502);
    const body = (await failed.json()) as { errors: { extensions: { code: string } }[]; extensions: { cost: Record<string, number> } };
    expect(body.errors[0]?.extensions.code).toBe('UPSTREAM_FAILED');
    expect(body.extensions.cost).toMatchObject({ requested: 5, actual: 5, refunded: 0 });
    const next = await send('{ books(first: 5) { title } }');
    expect(next.status).toBe(200);
    expect(next.headers.get('ratelimit')).toMatch(/^"monthly";r=20;t=\d+$/);
  });

  it.each([
    ['a subscription', 'subscription { bookAdded { title } }'],
    ['@defer', '{ books(first: 2) { title ... @defer { author { name } } } }'],
    ['@stream', '{ books(first: 2) @stream { title } }'],
  ])('refuses %s with 400 when the upstream schema does not declare it, before pricing it, and forwards nothing', async (_what, query) => {
    // given
    const tenant = uniqueTenant('gw');
    const { key } = keyStore.add({ tenant, keyId: 'k1', planId: 'gold' });
    state.seen = [];
    // when
    const response = await ask(key, query, { accept: 'application/graphql-response+json' });
    // then
    expect(response.status).toBe(400);
    const body = (await response.json()) as { errors: { extensions?: { code?: string } }[] };
    expect(body.errors.map((error) => error.extensions?.code)).toContain('GRAPHQL_VALIDATION_FAILED');
    expect(state.seen).toHaveLength(0);
  });

  it("is ready while the upstream serves its schema, and says what drifted when the upstream's schema changes", async () => {
    // given the upstream serving the SDL the gateway was built from
    const ready = await fetch(gatewayUrl.replace('/graphql', '/ready'));
    expect(ready.status).toBe(200);
    // when the upstream is deployed without Book.author
    state.mode = 'drifted';
    const drifted = await fetch(gatewayUrl.replace('/graphql', '/ready'));
    state.mode = 'ok';
    // then /ready reports the drift and names the missing field
    expect(drifted.status).toBe(503);
    const body = (await drifted.json()) as { code: string; changes: string[] };
    expect(body.code).toBe('UPSTREAM_SCHEMA_DRIFT');
    expect(body.changes).toEqual(['TYPE_REMOVED: Author was removed.', 'FIELD_REMOVED: Book.author was removed.']);
  });

  it('answers an upstream that is gone with 502 UPSTREAM_UNAVAILABLE', async () => {
    // given a gateway whose upstream port has nothing listening
    const closed = createServer();
    const port = await listen(closed);
    await new Promise((resolve) => closed.close(resolve));
    const tenant = uniqueTenant('gw');
    const { key } = keyStore.add({ tenant, keyId: 'k1', planId: 'gold' });
    const yoga = createGateway({
      schema: upstreamSchemaFromSdl(UPSTREAM_SDL),
      upstream: { url: `http://127.0.0.1:${port}/graphql` },
      tollgate: {
        decider: new RedisDecider(redis, { shardCount: config.redis.shardCount, clock: systemClock }),
        keyStore,
        plans,
        logger: createLogger({ level: 'silent', name: 'gateway-test' }),
      },
    });
    // when
    const response = await yoga.fetch('http://gateway.test/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ query: '{ books(first: 5) { title } }' }),
    });
    // then
    expect(response.status).toBe(502);
    const body = (await response.json()) as { errors: { extensions: { code: string } }[] };
    expect(body.errors[0]?.extensions.code).toBe('UPSTREAM_UNAVAILABLE');
    // and /ready says so
    const ready = await yoga.fetch('http://gateway.test/ready');
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ isReady: false, code: 'UPSTREAM_UNAVAILABLE' });
  });
});

describe('the gateway in front of an Apollo Server it prices only by a cost file', () => {
  let apollo: ApolloServer;
  let redis: DeciderRedis;
  let upstreamUrl: string;
  let received = 0;
  const keyStore = new InMemoryKeyStore();
  const plans = new InMemoryPlanStore([monthlyQuotaPlan('silver', 100)]);

  beforeAll(async () => {
    // an upstream whose SDL has no cost directives at all
    apollo = new ApolloServer({
      typeDefs: `type Author { name: String! }
        type Book { title: String!  author: Author! }
        type Query { books(first: Int!): [Book!]! }`,
      resolvers: {
        Query: {
          books: (_: unknown, { first }: { first: number }) => {
            received += 1;
            return Array.from({ length: first }, (_, index) => ({ title: `book ${index}`, author: { name: `author ${index}` } }));
          },
        },
      },
    });
    const { url } = await startStandaloneServer(apollo, { listen: { port: 0, host: '127.0.0.1' } });
    upstreamUrl = url;
    redis = await connectDeciderRedis({ url: config.redis.url, commandTimeoutMs: 2_000 });
  });

  afterAll(async () => {
    await apollo.stop();
    redis.disconnect();
  });

  it('introspects the upstream, applies the cost file, and admits exactly floor(limit / cost) of a parallel burst', async () => {
    // given the upstream's schema by introspection, priced by a cost file: a book 1 + its author 4
    const introspected = await introspectUpstream({ url: upstreamUrl });
    const schema = applyCostFile(
      introspected,
      parseCostFile('Query.books: { listSize: { slicingArguments: [first] } }\nBook.author: { weight: 4 }\n', introspected),
    );
    const yoga = createGateway({
      schema,
      upstream: { url: upstreamUrl },
      tollgate: {
        decider: new RedisDecider(redis, { shardCount: config.redis.shardCount, clock: systemClock }),
        keyStore,
        plans,
        logger: createLogger({ level: 'silent', name: 'gateway-test' }),
      },
    });
    const gateway = createServer((request, response) => void yoga(request, response));
    const url = `http://127.0.0.1:${await listen(gateway)}/graphql`;
    const tenant = uniqueTenant('gw');
    const { key } = keyStore.add({ tenant, keyId: 'k1', planId: 'silver' });
    received = 0;
    try {
      // when 12 clients ask at once for 3 books with their authors: 3 × (1 + 4) = 15 units each, of 100
      const responses = await Promise.all(
        Array.from({ length: 12 }, () =>
          fetch(url, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
            body: JSON.stringify({ query: '{ books(first: 3) { title author { name } } }' }),
          }),
        ),
      );
      // then 6 are served from the upstream, priced as the cost file says, and 6 refused before reaching it
      const served = responses.filter((response) => response.status === 200);
      expect(served).toHaveLength(6);
      expect(responses.filter((response) => response.status === 429)).toHaveLength(6);
      const body = (await served[0]?.json()) as { data: { books: unknown[] }; extensions: { cost: Record<string, number> } };
      expect(body.data.books).toHaveLength(3);
      expect(body.extensions.cost).toMatchObject({ requested: 15, actual: 15, refunded: 0 });
      expect(received).toBe(6);
    } finally {
      await new Promise((resolve) => gateway.close(resolve));
    }
  });
});
