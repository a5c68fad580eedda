/**
 * For tests of degraded-mode billing against real API processes: a tenant of
 * the test's own shard with a plan of its own, a metering worker (its own
 * process and task queue) pumping that shard into the ledger, requests that
 * report how they were decided, and the tenant's ledger of this month.
 */
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import type { LimitSpec } from '../../src/decider/index.js';
import { periodAt } from '../../src/decider/index.js';
import { DynamoConfigStore } from '../../src/graphql/index.js';
import { createDynamoClient, ledgerTableName } from '../../src/metering/index.js';
import { parsePlanId } from '../../src/shared/index.js';
import { ensureMeterWorkflows, meterPumpId } from '../../src/workflows/index.js';
import { allocateShards, tenantInShards } from './allocate.js';
import { readLedgerPartition, type LedgerPartition } from './ledger.js';
import { testStack } from './stack.js';
import { MONTH } from './time.js';
import { killWorkerProcesses, startWorkerProcess } from './worker-process.js';

/** A request of cost 7 (6 products and their connection). */
export const COST_7 = JSON.stringify({ query: '{ products(first: 6) { nodes { id } } }' });

export interface Answer {
  status: number;
  /** The `Tollgate-Degraded` header (the policy that decided), null when Redis decided. */
  degraded: string | null;
  /** Units billed for it (the cost receipt's actual), 0 when refused. */
  actual: number;
}

/** POSTs `body` to `/graphql` with `key`, and reads how it was decided and billed. */
export async function post(baseUrl: string, key: string, body = COST_7): Promise<Answer> {
  const response = await fetch(`${baseUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body,
  });
  const json = (await response.json()) as { extensions?: { cost?: { actual?: unknown } } };
  const actual = response.status === 200 ? Number(json.extensions?.cost?.actual ?? NaN) : 0;
  return { status: response.status, degraded: response.headers.get('tollgate-degraded'), actual };
}

/** A metered tenant: its shard is pumped into the ledger by a worker of this file's own. */
export interface MeteredTenant {
  tenant: string;
  key: string;
  /** The tenant's ledger partition of the current month. */
  ledger: () => Promise<LedgerPartition>;
  close: () => Promise<void>;
}

/**
 * Allocates a shard (of the 16384 the API must run with: `DECIDER_SHARDS=16384`), stores a plan of `limits` and a
 * key for a fresh tenant in it, and starts a worker process pumping that shard. Call at most once per file.
 */
export async function meteredTenant(limits: LimitSpec[]): Promise<MeteredTenant> {
  const stack = testStack();
  const range = allocateShards(1);
  const tenant = tenantInShards(range, 'dg');
  const shard = range.at(0);
  const dynamo = createDynamoClient({ endpoint: stack.dynamodbEndpoint, region: stack.dynamodbRegion });
  const store = new DynamoConfigStore(dynamo, { tablePrefix: stack.tablePrefix });
  const planId = `p-${tenant}`;
  await store.putPlan({ id: parsePlanId(planId), version: 1, limits, billingPeriod: MONTH, maxCostPerOperation: 10_000 }, Date.now());
  const { key } = await store.addKey({ tenant, keyId: 'k1', planId, nowMs: Date.now() });
  const taskQueue = `degraded-${randomBytes(4).toString('hex')}`;
  const worker = startWorkerProcess({ METER_ENABLED: 'false', TOLLGATE_TEST_TASK_QUEUE: taskQueue });
  await worker.ready;
  const connection = await Connection.connect({ address: stack.temporalAddress });
  const client = new Client({ connection, namespace: stack.temporalNamespace });
  await ensureMeterWorkflows(client, {
    shards: [shard],
    taskQueue,
    settings: { idleDelayMs: 200, idleWaitMs: 1_000, iterationsPerRun: 50, activityTimeoutMs: 30_000, heartbeatTimeoutMs: 5_000 },
    workflowTaskTimeoutMs: 2_000,
  });
  const periodStart = new Date(periodAt(MONTH, Date.now()).startMs).toISOString();
  return {
    tenant,
    key,
    ledger: () => readLedgerPartition(dynamo, { table: ledgerTableName(stack.tablePrefix), tenant, periodStart }),
    close: async () => {
      await client.workflow
        .getHandle(meterPumpId(shard))
        .terminate('test over')
        .catch(() => undefined);
      killWorkerProcesses();
      await connection.close();
      dynamo.destroy();
    },
  };
}
