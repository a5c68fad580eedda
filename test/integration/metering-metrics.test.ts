/**
 * `/metrics` of the API for metering (DESIGN §8): stream lag and ledger lag
 * read from the real usage streams on scrape (cached), dead letters, and the
 * audit's drift from the stored report. Runs on a Redis database of its own (4 shards).
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { connectDeciderRedis, usageStreamKey, type DeciderRedis } from '../../src/decider/index.js';
import { DynamoAuditStore, DynamoLedgerStore, UsagePump, createDynamoClient, parseShard, readStreamLag } from '../../src/metering/index.js';
import { TollgateMetrics } from '../../src/graphql/index.js';
import { closeAfterAll } from '../support/teardown.js';
import { allocateRedisDb } from '../support/allocate.js';
import { testStack, uniqueTenant } from '../support/stack.js';
import { generateEvents, reservedEvent, seededRandom } from '../support/usage-events.js';

const stack = testStack();
const { url: redisUrl } = allocateRedisDb();
const SHARDS = [0, 1, 2, 3];
const dynamo = createDynamoClient({ endpoint: stack.dynamodbEndpoint, region: stack.dynamodbRegion });
let redis: DeciderRedis;

beforeAll(async () => {
  redis = await connectDeciderRedis({ url: redisUrl, commandTimeoutMs: 5_000 });
});

closeAfterAll(() => [redis, dynamo]);

function gauge(text: string, name: string): number {
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (match === null) throw new Error(`${name} not in:\n${text}`);
  return Number(match[1]);
}

describe('metering metrics on /metrics', () => {
  it('reports unacknowledged entries, the age of the oldest, dead letters, and drops to 0 once pumped', async () => {
    // given 40 events on shard 1 appended two minutes ago by id (no pump has run: no group), 30 on shard 2, one poison
    const tenants = [uniqueTenant('lag')];
    const events = generateEvents({ tenants, periods: [Date.UTC(2026, 10, 1)], requests: 30, random: seededRandom(67), prefix: 'lag' });
    const pastMs = Date.now() - 120_000;
    const first = events.slice(0, 40);
    for (const [index, event] of first.entries()) await redis.xadd(usageStreamKey(parseShard(1)), `${pastMs}-${index}`, ...event.fields);
    for (const event of events.slice(40)) await redis.xadd(usageStreamKey(parseShard(2)), '*', ...event.fields);
    const poison = reservedEvent({ requestId: 'poison-1', tenant: tenants[0] ?? '', bp: Date.UTC(2026, 10, 1), cost: 1 }).fields.map(
      (value) => (value === 'usage.reserved.v1' ? 'usage.bogus.v1' : value),
    );
    await redis.xadd(usageStreamKey(parseShard(2)), '*', ...poison);
    let reads = 0;
    const metrics = new TollgateMetrics({
      streamLag: () => {
        reads += 1;
        return readStreamLag(redis, { shards: SHARDS });
      },
      collectCacheMs: 0,
    });
    // when scraped
    const before = await metrics.registry.metrics();
    // then
    expect(gauge(before, 'tollgate_usage_stream_unacknowledged_entries')).toBe(events.length + 1);
    expect(gauge(before, 'tollgate_ledger_lag_seconds')).toBeGreaterThanOrEqual(120);
    expect(gauge(before, 'tollgate_usage_dead_letters')).toBe(0);
    expect(reads).toBe(1);

    // when a batch is delivered but not acknowledged (pending), the lag still counts it
    const pump = new UsagePump(redis, new DynamoLedgerStore(dynamo, { tablePrefix: stack.tablePrefix }), { batchSize: 10 });
    await expect(
      pump.pumpBatch({
        shard: parseShard(1),
        claimCursor: '0-0',
        onStage: (stage) => {
          if (stage === 'read') throw new Error('crash after read');
        },
      }),
    ).rejects.toThrow('crash after read');
    const pending = await metrics.registry.metrics();
    expect(gauge(pending, 'tollgate_usage_stream_unacknowledged_entries')).toBe(events.length + 1);
    expect(gauge(pending, 'tollgate_ledger_lag_seconds')).toBeGreaterThanOrEqual(120);

    // when everything is pumped (the crashed batch reclaimed)
    const drainer = new UsagePump(redis, new DynamoLedgerStore(dynamo, { tablePrefix: stack.tablePrefix }), {
      batchSize: 10,
      claimMinIdleMs: 1,
    });
    for (const shard of [1, 2]) {
      for (let cursor = '0-0'; ;) {
        const result = await drainer.pumpBatch({ shard: parseShard(shard), claimCursor: cursor });
        cursor = result.claimCursor;
        if (result.read === 0) break;
      }
    }
    const after = await metrics.registry.metrics();
    expect(gauge(after, 'tollgate_usage_stream_unacknowledged_entries')).toBe(0);
    expect(gauge(after, 'tollgate_ledger_lag_seconds')).toBe(0);
    expect(gauge(after, 'tollgate_usage_dead_letters')).toBe(1);
  });

  it('a scrape within the cache time reuses the last read; the audit gauges come from the stored report', async () => {
    // given a stored audit report
    const scope = `m-${randomBytes(4).toString('hex')}`;
    const store = new DynamoAuditStore(dynamo, { tablePrefix: stack.tablePrefix });
    await store.put({
      scope,
      cycle: 3,
      startedAtMs: 1_800_000_000_000,
      finishedAtMs: 1_800_000_060_000,
      summary: { audited: 12, drifting: 2, absoluteDrift: 19, unsettled: 1, samples: [] },
    });
    let reads = 0;
    const metrics = new TollgateMetrics({
      streamLag: () => {
        reads += 1;
        return readStreamLag(redis, { shards: SHARDS });
      },
      auditReport: () => store.latest(scope),
      collectCacheMs: 60_000,
    });
    // when scraped three times
    await Promise.all([metrics.registry.metrics(), metrics.registry.metrics()]);
    const text = await metrics.registry.metrics();
    // then Redis was read once, and the audit gauges carry the report
    expect(reads).toBe(1);
    expect(gauge(text, 'tollgate_audit_drift_units')).toBe(19);
    expect(gauge(text, 'tollgate_audit_drifting_periods')).toBe(2);
    expect(gauge(text, 'tollgate_audit_unsettled_periods')).toBe(1);
    expect(gauge(text, 'tollgate_audit_last_cycle_timestamp_seconds')).toBe(1_800_000_060);
    // and an older cycle never replaces it
    expect(
      await store.put({
        scope,
        cycle: 9,
        startedAtMs: 1_700_000_000_000,
        finishedAtMs: 1_700_000_060_000,
        summary: { audited: 0, drifting: 0, absoluteDrift: 0, unsettled: 0, samples: [] },
      }),
    ).toBe(false);
  });
});
