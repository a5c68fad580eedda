/**
 * The audit and the lag reader on Redis Cluster (3 masters, globalSetup): the
 * snapshot MULTIs stay in one slot (the shard's hash tag), the SCAN walks
 * every master in turn, and a whale tenant's parts on different nodes are summed.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { RedisDecider, createDeciderRedis, shardOf, shardOfPart, type DeciderRedis } from '../../src/decider/index.js';
import {
  DynamoLedgerStore,
  MeteringAuditor,
  UsagePump,
  createDynamoClient,
  parseShard,
  readStreamLag,
  type AuditOutcome,
  type AuditScanPosition,
} from '../../src/metering/index.js';
import { parseTenantId, systemClock } from '../../src/shared/index.js';
import { closeAfterAll } from '../support/teardown.js';
import { allocateShards, tenantInShards } from '../support/allocate.js';
import { testConfig, testStack } from '../support/stack.js';
import { AdmittedRecord, monthStartMs, runTraffic } from '../support/traffic.js';
import { seededRandom } from '../support/usage-events.js';

const SHARDS = 16_384;
const range = allocateShards(256);
const config = testConfig();
const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
let cluster: DeciderRedis;

beforeAll(async () => {
  cluster = createDeciderRedis({ url: 'redis://unused', clusterNodes: testStack().redisClusterNodes, commandTimeoutMs: 5_000 });
  await cluster.connect();
});

closeAfterAll(() => [cluster, dynamo]);

/** A fresh tenant whose shard, and the `parts - 1` after it, are this file's (from the test allocator). */
const tenantInRange = (prefix: string, parts = 1): string => tenantInShards(range, prefix, parts);

async function auditEverything(auditor: MeteringAuditor): Promise<{ outcomes: AuditOutcome[]; nodes: Set<number> }> {
  const outcomes: AuditOutcome[] = [];
  const nodes = new Set<number>();
  for (let position: AuditScanPosition | null = { node: 0, cursor: '0' }; position !== null;) {
    nodes.add(position.node);
    const page = await auditor.auditPage({ position, count: 500 });
    outcomes.push(...page.outcomes);
    position = page.next;
  }
  return { outcomes, nodes };
}

describe('audit on Redis Cluster', () => {
  it('finds every tenant-period on every master and reports no drift, before and after pumping', async () => {
    // given six tenants and one whale (3 parts) with traffic through the decider on the cluster
    const decider = new RedisDecider(cluster, { shardCount: SHARDS, clock: systemClock });
    const tenants = Array.from({ length: 6 }, () => tenantInRange('cl'));
    const whale = tenantInRange('whale', 3);
    const record = new AdmittedRecord();
    await runTraffic({ decider, tenants, requests: 60, random: seededRandom(71), record });
    await runTraffic({ decider, tenants: [whale], requests: 30, random: seededRandom(73), record, subShards: 3 });
    const periodStart = new Date(monthStartMs(Date.now())).toISOString();
    const expected = (tenant: string): number | undefined => record.byPeriod.get(`${tenant}|${periodStart}`)?.amount;
    const auditor = new MeteringAuditor(cluster, dynamo, { shardCount: SHARDS, tablePrefix: config.dynamodb.tablePrefix });
    const mine = (outcomes: AuditOutcome[], tenant: string) =>
      outcomes.filter(
        (outcome) => outcome.kind === 'audited' && outcome.report.tenant === tenant && outcome.report.periodStart === periodStart,
      );

    // when audited with nothing pumped: the scan visits all three masters
    const before = await auditEverything(auditor);
    expect(before.nodes).toEqual(new Set([0, 1, 2]));
    // then each tenant's usage is all in flight
    for (const tenant of [...tenants, whale]) {
      const found = mine(before.outcomes, tenant);
      expect(found.length, tenant).toBeGreaterThan(0);
      for (const outcome of found)
        expect(outcome).toMatchObject({ report: { admitted: expected(tenant), inFlight: expected(tenant), drift: 0, duplicateEvents: 0 } });
    }
    expect(mine(before.outcomes, whale)[0]).toMatchObject({ report: { parts: 3 } });

    // when every shard involved is pumped
    const shards = new Set([
      ...tenants.map((tenant) => shardOf(parseTenantId(tenant), SHARDS)),
      ...[0, 1, 2].map((part) => shardOfPart(parseTenantId(whale), SHARDS, part)),
    ]);
    const pump = new UsagePump(cluster, new DynamoLedgerStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix }), { batchSize: 50 });
    for (const shard of shards) {
      for (let cursor = '0-0'; ;) {
        const result = await pump.pumpBatch({ shard: parseShard(shard), claimCursor: cursor });
        cursor = result.claimCursor;
        if (result.read === 0) break;
      }
    }
    // then every tenant is ledgered, nothing in flight, no drift, and the lag is 0 on those shards
    const after = await auditEverything(auditor);
    expect(after.nodes).toEqual(new Set([0, 1, 2]));
    for (const tenant of [...tenants, whale]) {
      const found = mine(after.outcomes, tenant);
      expect(found.length, tenant).toBeGreaterThan(0);
      for (const outcome of found)
        expect(outcome).toMatchObject({
          report: { admitted: expected(tenant), ledgered: expected(tenant), inFlight: 0, drift: 0, duplicateEvents: 0 },
        });
    }
    expect(mine(after.outcomes, whale)[0]).toMatchObject({ report: { parts: 3 } });
    expect(await readStreamLag(cluster, { shards: [...shards] })).toMatchObject({ unacknowledged: 0, oldestUnacknowledgedAgeSeconds: 0 });
  });
});
