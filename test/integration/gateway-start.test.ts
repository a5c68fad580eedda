/**
 * Gateway mode through the start path `npm start` runs: the API entry
 * (`src/graphql/server.ts`) with `TOLLGATE_UPSTREAM` and a pinned schema, in
 * front of a yoga upstream the test starts, against the test stack. The pinned
 * schema has a field the upstream no longer serves: the start reports the
 * drift and `/ready` answers 503 with it, while what the upstream still serves
 * is limited and ledgered. A deferrable mutation past its `defer` limit is
 * answered 202, and its job, run by the process's jobs worker, reaches the
 * upstream once and is charged once.
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
import { parseLimitId, parseTenantId } from '../../src/shared/index.js';
import { ensureMeterWorkflows, meterPumpId } from '../../src/workflows/index.js';
import { LOGICAL_SHARDS, allocateShards, tenantInShards } from '../support/allocate.js';
import { startApiServer, storeTenantPlan, type ApiServer } from '../support/api-server.js';
import { waitFor } from '../support/poll.js';
import { testStack } from '../support/stack.js';
import { closeAll } from '../support/teardown.js';
import { MONTH, monthStartMs, sleep } from '../support/time.js';
import { killWorkerProcesses, startWorkerProcess } from '../support/worker-process.js';

const stack = testStack();
const shards = allocateShards(1);
const taskQueue = `gateway-start-${shards.first}`;

/** What the upstream serves: 8 books at most, a book costs 1; an export costs 50 and may be deferred. */
const UPSTREAM_SDL = `${COST_DIRECTIVES_SDL}
  type Book { title: String! }
  type Query { books(first: Int!): [Book!]! @listSize(slicingArguments: ["first"]) }
  type Mutation { exportBooks: Int! @cost(weight: 50) @deferrable }`;
/** The schema the operator pinned: it still has `Book.isbn`, which the upstream dropped. */
const PINNED_SDL = UPSTREAM_SDL.replace('type Book { title: String! }', 'type Book { title: String!  isbn: String }');

function startUpstream(state: { exports: number }): Server {
  const yoga = createYoga({
    schema: createSchema({
      typeDefs: UPSTREAM_SDL,
      resolvers: {
        Query: {
          books: (_: unknown, { first }: { first: number }) => Array.from({ length: Math.min(first, 8) }, (_, i) => ({ title: `b${i}` })),
        },
        Mutation: {
          exportBooks: () => {
            state.exports += 1;
            return state.exports;
          },
        },
      },
    }),
    logging: false,
  });
  return createServer((request, response) => void yoga(request, response));
}

const monthly = (limit: number): LimitSpec => ({
  id: parseLimitId('monthly'),
  scope: 'tenant',
  mode: 'hard',
  onDeciderDown: 'closed',
  algorithm: { kind: 'period-quota', limit, period: MONTH, thresholdsPercent: [] },
});

describe('gateway mode through the start path, TOLLGATE_UPSTREAM set', () => {
  const state = { exports: 0 };
  const upstream = startUpstream(state);
  const scratch = mkdtempSync(join(tmpdir(), 'gateway-start-'));
  const dynamo = createDynamoClient({ endpoint: stack.dynamodbEndpoint, region: stack.dynamodbRegion });
  const ledger = new DynamoLedgerStore(dynamo, { tablePrefix: stack.tablePrefix });
  let temporal: Connection;
  let api: ApiServer;
  let reader: { tenant: string; key: string };
  let exporter: { tenant: string; key: string };

  beforeAll(async () => {
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    writeFileSync(join(scratch, 'schema.graphql'), PINNED_SDL);
    reader = await storeTenantPlan([monthly(7)], { tenant: tenantInShards(shards, 'gtr') });
    // one export (50) fits at once; the bucket has room for the next after 3 s
    exporter = await storeTenantPlan(
      [
        monthly(1_000),
        {
          id: parseLimitId('exports'),
          scope: 'tenant',
          mode: 'defer',
          onDeciderDown: 'closed',
          algorithm: { kind: 'token-bucket', capacity: 60, refillAmount: 60, refillPeriodMs: 3_000 },
        },
      ],
      { tenant: tenantInShards(shards, 'gte') },
    );
    api = await startApiServer({
      scratch,
      env: {
        TOLLGATE_UPSTREAM: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/graphql`,
        TOLLGATE_UPSTREAM_SCHEMA: join(scratch, 'schema.graphql'),
        DECIDER_SHARDS: String(LOGICAL_SHARDS),
        JOBS_RETRY_MIN_MS: '500',
        JOBS_RETRY_MAX_MS: '3000',
      },
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
    killWorkerProcesses();
    await new Client({ connection: temporal, namespace: stack.temporalNamespace }).workflow
      .getHandle(meterPumpId(shards.first))
      .terminate('test over')
      .catch(() => undefined);
    await api.stop();
    upstream.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
    await closeAll(temporal, dynamo);
    rmSync(scratch, { recursive: true, force: true });
  });

  const post = (key: string, query: string): Promise<Response> =>
    fetch(`${api.baseUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ query }),
    });
  const ledgered = (tenant: string, amount: number): Promise<number> =>
    waitFor(
      `${amount} units of ${tenant} in the ledger`,
      async () => {
        const read = await ledger.getBalance({
          tenant: parseTenantId(tenant),
          periodStart: new Date(monthStartMs(Date.now())).toISOString(),
        });
        return read.amount >= amount ? read.amount : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );

  it('reports at start that the upstream no longer serves the pinned schema, and /ready answers 503 with what drifted', async () => {
    expect(api.output()).toContain('the upstream no longer serves the pinned schema');
    expect(api.output()).toContain('Book.isbn');
    const ready = await fetch(`${api.baseUrl}/ready`);
    expect(ready.status).toBe(503);
    const report = (await ready.json()) as { checks: Record<string, { isOk: boolean; code?: string; changes?: string[] }> };
    expect(report.checks['upstream']).toMatchObject({ isOk: false, code: 'UPSTREAM_SCHEMA_DRIFT' });
    expect(report.checks['upstream']?.changes?.join('\n')).toContain('Book.isbn');
  });

  it('limits what the upstream still serves and ledgers it', async () => {
    // when the reader (7 units) asks three times for 3 books
    const statuses: number[] = [];
    for (let i = 0; i < 3; i += 1) statuses.push((await post(reader.key, '{ books(first: 3) { title } }')).status);
    // then two are served and the third refused; the ledger holds 6
    expect(statuses).toEqual([200, 200, 429]);
    expect(await ledgered(reader.tenant, 6)).toBe(6);
  });

  it('answers an export past its defer limit with 202 and runs it upstream once, later, charged once', async () => {
    // when the exporter asks for two exports at once (50 each; 60 in the bucket)
    const [first, second] = await Promise.all([
      post(exporter.key, 'mutation { exportBooks }'),
      post(exporter.key, 'mutation { exportBooks }'),
    ]);
    // then one runs now and the other is a job
    const statuses = [first?.status, second?.status].sort();
    expect(statuses).toEqual([200, 202]);
    const deferred = (await (first?.status === 202 ? first : second)?.json()) as { extensions: { job: { id: string } } };
    const jobId = deferred.extensions.job.id;
    expect(jobId).toBeTruthy();
    // and the job succeeds once the bucket refills, having reached the upstream once
    await waitFor(
      'the deferred export to succeed',
      async () => {
        const job = await fetch(`${api.baseUrl}/jobs/${jobId}`, { headers: { authorization: `Bearer ${exporter.key}` } });
        return ((await job.json()) as { job?: { status?: string } }).job?.status === 'succeeded' ? true : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    expect(state.exports).toBe(2);
    // and the ledger holds the two exports, each once: 100
    expect(await ledgered(exporter.tenant, 100)).toBe(100);
    await sleep(2_000);
    expect(await ledgered(exporter.tenant, 100)).toBe(100);
    expect(state.exports).toBe(2);
  }, 240_000);
});
