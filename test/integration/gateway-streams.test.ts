/**
 * `@defer`/`@stream` and subscriptions through `tollgate gateway`, the process,
 * in front of a yoga upstream that serves them (`useDeferStream`, a
 * Subscription type), over real sockets. Incremental payloads reach the client
 * as the upstream sends them (the test holds the upstream's deferred fields
 * until the client has the first payload); the operation is charged its
 * actual cost, measured on every payload, once; a client that goes away keeps
 * its reservation charged; every subscription event is decided and charged on
 * its own, and an event the quota refuses ends the subscription.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useDeferStream } from '@graphql-yoga/plugin-defer-stream';
import { Client, Connection } from '@temporalio/client';
import type { ExecutionResult } from 'graphql';
import { createSchema, createYoga } from 'graphql-yoga';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LimitSpec } from '../../src/decider/index.js';
import { multipartBoundary, readEventStream, readMultipart } from '../../src/gateway/streams.js';
import { COST_DIRECTIVES_SDL } from '../../src/graphql/index.js';
import { createDynamoClient, ledgerTableName } from '../../src/metering/index.js';
import { parseLimitId } from '../../src/shared/index.js';
import { ensureMeterWorkflows, meterPumpId } from '../../src/workflows/index.js';
import { LOGICAL_SHARDS, allocateShards, tenantInShards } from '../support/allocate.js';
import { startApiServer, storeTenantPlan, type ApiServer } from '../support/api-server.js';
import { readLedgerPartition } from '../support/ledger.js';
import { waitFor } from '../support/poll.js';
import { testStack } from '../support/stack.js';
import { closeAll } from '../support/teardown.js';
import { MONTH, monthStartMs } from '../support/time.js';
import { killWorkerProcesses, startWorkerProcess } from '../support/worker-process.js';

const stack = testStack();
const shards = allocateShards(1);
const taskQueue = `gateway-streams-${shards.first}`;

/** The upstream's SDL, as yoga with `useDeferStream` prints it: 3 books exist; a book costs 1, its author 4. */
const UPSTREAM_SDL = `${COST_DIRECTIVES_SDL}
  directive @defer(if: Boolean! = true, label: String) on FRAGMENT_SPREAD | INLINE_FRAGMENT
  directive @stream(if: Boolean! = true, label: String, initialCount: Int = 0) on FIELD
  type Author { name: String! }
  type Book { title: String!  author: Author! @cost(weight: 4) }
  type Query { books(first: Int!): [Book!]! @listSize(slicingArguments: ["first"]) }
  type Subscription { bookAdded(count: Int!): Book! }`;

/**
 * The upstream; its authors wait for `authorsReleased`, so a deferred payload cannot come before the test allows it.
 * Counts the responses closed before they were finished (`abandoned`).
 */
function startUpstream(state: { authorsReleased: Promise<void>; abandoned: number }): Server {
  const books = [0, 1, 2].map((index) => ({ title: `book ${index}`, author: { name: `author ${index}` } }));
  const yoga = createYoga({
    schema: createSchema({
      typeDefs: UPSTREAM_SDL,
      resolvers: {
        Query: { books: (_: unknown, { first }: { first: number }) => books.slice(0, first) },
        Book: {
          author: async (book: (typeof books)[number]) => {
            await state.authorsReleased;
            return book.author;
          },
        },
        Subscription: {
          bookAdded: {
            subscribe: async function* added(_: unknown, { count }: { count: number }) {
              for (let index = 0; index < count; index += 1) yield await Promise.resolve({ bookAdded: books[index % books.length] });
            },
          },
        },
      },
    }),
    plugins: [useDeferStream()],
    logging: false,
  });
  return createServer((request, response) => {
    response.on('close', () => {
      if (!response.writableFinished) state.abandoned += 1;
    });
    void yoga(request, response);
  });
}

const quota = (limit: number): LimitSpec[] => [
  {
    id: parseLimitId('monthly'),
    scope: 'tenant',
    mode: 'hard',
    onDeciderDown: 'closed',
    algorithm: { kind: 'period-quota', limit, period: MONTH, thresholdsPercent: [] },
  },
];

type Payload = ExecutionResult & { hasNext?: boolean; incremental?: { data?: unknown; items?: unknown[] }[] };
type Cost = { requested: number; actual: number };

describe('tollgate gateway passes @defer/@stream and subscriptions through, and charges them', () => {
  let release: () => void = () => undefined;
  const state = { authorsReleased: Promise.resolve(), abandoned: 0 };
  const hold = (): void => {
    state.authorsReleased = new Promise((resolve) => (release = resolve));
  };
  const upstream = startUpstream(state);
  const scratch = mkdtempSync(join(tmpdir(), 'gateway-streams-'));
  const dynamo = createDynamoClient({ endpoint: stack.dynamodbEndpoint, region: stack.dynamodbRegion });
  let temporal: Connection;
  let gateway: ApiServer;
  const tenants: Record<'deferred' | 'gone' | 'subscribed', { tenant: string; key: string }> = {} as never;

  beforeAll(async () => {
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    writeFileSync(join(scratch, 'schema.graphql'), UPSTREAM_SDL);
    tenants.deferred = await storeTenantPlan(quota(100), { tenant: tenantInShards(shards, 'gsd') });
    tenants.gone = await storeTenantPlan(quota(100), { tenant: tenantInShards(shards, 'gsg') });
    tenants.subscribed = await storeTenantPlan(quota(12), { tenant: tenantInShards(shards, 'gss') });
    gateway = await startApiServer({
      scratch,
      command: [
        'bin/tollgate.mjs',
        'gateway',
        ...['--upstream', `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/graphql`],
        ...['--schema', join(scratch, 'schema.graphql')],
      ],
      env: { DECIDER_SHARDS: String(LOGICAL_SHARDS) },
    });
    temporal = await Connection.connect({ address: stack.temporalAddress });
    startWorkerProcess({ TOLLGATE_TEST_TASK_QUEUE: taskQueue, DECIDER_SHARDS: String(LOGICAL_SHARDS) });
    await ensureMeterWorkflows(new Client({ connection: temporal, namespace: stack.temporalNamespace }), {
      shards: [shards.first],
      taskQueue,
      settings: { idleDelayMs: 200, iterationsPerRun: 20, activityTimeoutMs: 30_000, heartbeatTimeoutMs: 5_000 },
    });
  }, 120_000);

  afterAll(async () => {
    release();
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

  const post = (key: string, query: string, accept: string, signal?: AbortSignal): Promise<Response> =>
    fetch(`${gateway.baseUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept, authorization: `Bearer ${key}` },
      body: JSON.stringify({ query }),
      ...(signal === undefined ? {} : { signal }),
    });
  const ledgerOf = (tenant: string, atLeast: number): Promise<{ entryIds: string[]; amount: number }> =>
    waitFor(
      `the ledger of ${tenant}`,
      async () => {
        const partition = await readLedgerPartition(dynamo, {
          table: ledgerTableName(stack.tablePrefix),
          tenant,
          periodStart: new Date(monthStartMs(Date.now())).toISOString(),
        });
        return partition.entrySum >= atLeast ? { entryIds: partition.entryIds, amount: partition.entrySum } : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
  /** The units left, as a refused request's RateLimit header says. */
  const remaining = async (key: string): Promise<number> => {
    const refused = await post(key, '{ books(first: 1000) { title } }', 'application/json');
    expect(refused.status).toBe(429);
    return Number(/;r=(\d+);/.exec(refused.headers.get('ratelimit') ?? '')?.[1]);
  };

  it('delivers @defer payloads as the upstream sends them and charges the actual cost of all of them, once, in the ledger', async () => {
    // given the upstream holding its authors
    hold();
    const { tenant, key } = tenants.deferred;
    // when a client asks for 5 books (3 exist) with their authors deferred: 5 × (1 + 4) = 25 reserved
    const response = await post(key, '{ books(first: 5) { title ... @defer { author { name } } } }', 'multipart/mixed');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('multipart/mixed');
    const payloads = readMultipart(response.body!, multipartBoundary(response.headers.get('content-type') ?? ''));
    // then the first payload arrives while the upstream still holds every author
    const first = (await payloads.next()).value as Payload;
    expect(first.hasNext).toBe(true);
    expect(first.data).toEqual({ books: [{ title: 'book 0' }, { title: 'book 1' }, { title: 'book 2' }] });
    // and once the upstream lets the authors go, they arrive in later payloads, the last one with the cost
    release();
    const rest: Payload[] = [];
    for await (const payload of payloads) rest.push(payload);
    expect(rest.flatMap((payload) => payload.incremental ?? []).map((item) => item.data)).toEqual(
      expect.arrayContaining([{ author: { name: 'author 0' } }, { author: { name: 'author 1' } }, { author: { name: 'author 2' } }]),
    );
    expect(rest.at(-1)?.hasNext).toBe(false);
    // and it is charged what came back, 3 × 5 = 15, refunded 10
    expect((rest.at(-1)?.extensions?.['cost'] as Cost | undefined) ?? {}).toMatchObject({ requested: 25, actual: 15 });
    expect(await remaining(key)).toBe(85);
    // and the ledger holds that one request, once: its charge and its settlement, 15 in all
    const ledgered = await ledgerOf(tenant, 15);
    expect(ledgered.amount).toBe(15);
    expect(ledgered.entryIds).toEqual([ledgered.entryIds[0], `${ledgered.entryIds[0]}.settled`]);
  });

  it('streams @stream items and charges the items that came', async () => {
    // when a client streams 5 books (3 exist) one at a time
    const response = await post(tenants.gone.key, '{ books(first: 5) @stream(initialCount: 1) { title } }', 'multipart/mixed');
    const payloads: Payload[] = [];
    for await (const payload of readMultipart(response.body!, multipartBoundary(response.headers.get('content-type') ?? '')))
      payloads.push(payload);
    // then the first payload holds one book and later ones the other two; 5 reserved, 3 charged
    expect(payloads[0]?.data).toEqual({ books: [{ title: 'book 0' }] });
    expect(payloads.flatMap((payload) => payload.incremental ?? []).flatMap((item) => item.items ?? [])).toEqual([
      { title: 'book 1' },
      { title: 'book 2' },
    ]);
    expect(payloads.at(-1)?.extensions?.['cost']).toMatchObject({ requested: 5, actual: 3 });
    expect(await remaining(tenants.gone.key)).toBe(97);
  });

  it('keeps the whole reservation charged when the client goes away before the last payload', async () => {
    // given the upstream holding its authors, and a tenant with 97 left
    hold();
    const { key } = tenants.gone;
    const client = new AbortController();
    const response = await post(key, '{ books(first: 4) { title ... @defer { author { name } } } }', 'multipart/mixed', client.signal);
    const payloads = readMultipart(response.body!, multipartBoundary(response.headers.get('content-type') ?? ''));
    expect(((await payloads.next()).value as Payload).hasNext).toBe(true);
    // when the client goes away after the first payload
    const closedBefore = state.abandoned;
    client.abort();
    await payloads.return(undefined).catch(() => undefined);
    // then the gateway closes its upstream request at once, before the upstream has sent anything more
    await waitFor('the upstream request to be closed', () => state.abandoned > closedBefore, { timeoutMs: 10_000, intervalMs: 100 });
    release();
    // and the 4 × 5 = 20 reserved stay charged
    expect(await remaining(key)).toBe(77);
  });

  it('charges a subscription per event delivered, each its own ledger entry, and ends it when the quota refuses an event', async () => {
    // given a tenant with 12 units; an event (a book with its author) costs 5
    const { tenant, key } = tenants.subscribed;
    // when it subscribes to 3 events over SSE
    const response = await post(key, 'subscription { bookAdded(count: 3) { title author { name } } }', 'text/event-stream');
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const events: Payload[] = [];
    for await (const event of readEventStream(response.body!)) events.push(event);
    // then two events are delivered and charged 5 each, and the third, past the quota, ends it with QUOTA_EXHAUSTED
    expect(events.slice(0, 2).map((event) => event.data)).toEqual([
      { bookAdded: { title: 'book 0', author: { name: 'author 0' } } },
      { bookAdded: { title: 'book 1', author: { name: 'author 1' } } },
    ]);
    expect(events.slice(0, 2).map((event) => (event.extensions?.['cost'] as Cost).actual)).toEqual([5, 5]);
    expect(events).toHaveLength(3);
    expect(events[2]?.errors?.[0]?.extensions?.['code']).toBe('QUOTA_EXHAUSTED');
    expect(await remaining(key)).toBe(2);
    // and the ledger holds one usage event per delivered event (each charged exactly its reservation: no settlement)
    const ledgered = await ledgerOf(tenant, 10);
    expect(ledgered.amount).toBe(10);
    expect(ledgered.entryIds).toHaveLength(2);
  });
});
