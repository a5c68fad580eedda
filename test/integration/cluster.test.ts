/**
 * Redis Cluster (3 local masters started by the globalSetup): every script
 * call of one tenant stays in one slot because its keys share the shard's
 * hash tag, so no CROSSSLOT error can occur.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  appendUsage,
  assertNoEviction,
  createDeciderRedis,
  probeDecider,
  shardOf,
  usageStreamKey,
  type DeciderRedis,
} from '../../src/decider/index.js';
import { parseEventId, parseTenantId } from '../../src/shared/index.js';
import { closeAfterAll } from '../support/teardown.js';
import { testStack, uniqueTenant } from '../support/stack.js';

let cluster: DeciderRedis;

beforeAll(async () => {
  cluster = createDeciderRedis({ url: 'redis://unused', clusterNodes: testStack().redisClusterNodes, commandTimeoutMs: 2_000 });
  await cluster.connect();
});

closeAfterAll(() => [cluster]);

describe('Redis Cluster', () => {
  it('appends usage for tenants on every master without CROSSSLOT', async () => {
    // given 60 tenants spread over 16 logical shards
    const shardCount = 16;
    const tenants = Array.from({ length: 60 }, () => parseTenantId(uniqueTenant()));
    // when each appends one event (and one retry)
    const results = await Promise.all(
      tenants.map(async (tenant) => {
        const input = {
          tenant,
          eventId: parseEventId(`ev-${randomBytes(4).toString('hex')}`),
          fields: { tenant, cost: '1' },
          shardCount,
        };
        const first = await appendUsage(cluster, input);
        const retry = await appendUsage(cluster, input);
        return { tenant, first, retry };
      }),
    );
    // then every first append is new, every retry is recognised, and each
    // entry is in the stream of the tenant's shard
    for (const { tenant, first, retry } of results) {
      expect(first.isNew).toBe(true);
      expect(retry).toMatchObject({ isNew: false, streamId: first.streamId });
      const entries = await cluster.xrange(usageStreamKey(shardOf(tenant, shardCount)), first.streamId, first.streamId);
      expect(entries[0]?.[1]).toEqual(['tenant', tenant, 'cost', '1', 'time_ms', String(first.nowMs)]);
    }
    // and the shards really landed on more than one master
    const masters = new Set<string>();
    for (const { tenant } of results) {
      const slot = Number(await cluster.call('CLUSTER', 'KEYSLOT', usageStreamKey(shardOf(tenant, shardCount))));
      const owner = 'slots' in cluster ? cluster.slots[slot]?.[0] : undefined;
      expect(owner).toBeDefined();
      masters.add(String(owner));
    }
    expect(masters.size).toBe(3);
  });

  it('runs the readiness script and checks the eviction policy of every master', async () => {
    const { nowMs } = await probeDecider(cluster);
    expect(nowMs).toBeGreaterThan(1_700_000_000_000);
    await expect(assertNoEviction(cluster)).resolves.toBeUndefined();
  });
});
