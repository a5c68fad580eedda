/**
 * The decider on a Redis Cluster of this file's own (3 masters, 3 replicas):
 * no CROSSSLOT ever, and exact counts while the slots under load are moved
 * to another master (`redis-cli --cluster reshard`) and while a master fails
 * over to its replica (`CLUSTER FAILOVER`). Callers retry a failed decision
 * with the same request id, which the script deduplicates.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalRedisCluster, stopProcess, type RedisCluster } from '../../infra/services.js';
import {
  RedisDecider,
  createDeciderRedis,
  shardOf,
  usageStreamKey,
  type DecideInput,
  type Decision,
  type DeciderRedis,
  type LimitSpec,
} from '../../src/decider/index.js';
import { parseEventId, parseKeyId, parseLimitId, parseTenantId, systemClock } from '../../src/shared/index.js';
import { waitFor } from '../support/poll.js';
import { closeAll } from '../support/teardown.js';
import { uniqueTenant } from '../support/stack.js';
import { MONTH } from '../support/time.js';
import { streamEvents } from '../support/usage-stream.js';

const execFileAsync = promisify(execFile);
const SHARDS = 256;
const scratch = mkdtempSync(join(tmpdir(), 'tollgate-cluster-'));
let cluster: RedisCluster;
let client: DeciderRedis;
let decider: RedisDecider;

beforeAll(async () => {
  cluster = await startLocalRedisCluster({ dataDir: scratch, nodes: 6, replicasPerMaster: 1 });
  client = createDeciderRedis({ url: 'redis://unused', clusterNodes: cluster.nodes, commandTimeoutMs: 2_000 });
  client.on('error', () => undefined);
  await client.connect();
  decider = new RedisDecider(client, { shardCount: SHARDS, clock: systemClock });
}, 120_000);

afterAll(async () => {
  await closeAll(client);
  await Promise.all(cluster.processes.map((proc) => stopProcess(proc)));
  rmSync(scratch, { recursive: true, force: true });
});

const limits = (quota: number): LimitSpec[] => [
  {
    id: parseLimitId('month'),
    scope: 'tenant',
    algorithm: { kind: 'period-quota', limit: quota, period: MONTH, thresholdsPercent: [80] },
    mode: 'hard',
    onDeciderDown: 'open',
  },
  {
    id: parseLimitId('burst'),
    scope: 'apiKey',
    algorithm: { kind: 'token-bucket', capacity: 1_000_000, refillAmount: 1, refillPeriodMs: 1_000 },
    mode: 'hard',
    onDeciderDown: 'open',
  },
];

function input(tenant: string, quota: number): DecideInput {
  return {
    tenant: parseTenantId(tenant),
    keyId: parseKeyId('k1'),
    requestId: parseEventId(`r-${randomBytes(6).toString('hex')}`),
    operation: 'op',
    cost: 3,
    limits: limits(quota),
    billingPeriod: MONTH,
    policyVersion: 1,
  };
}

/** Decides, retrying the same request id until Redis answers (what a careful caller does). */
async function decideWithRetry(request: DecideInput): Promise<{ decision: Decision; errors: string[] }> {
  const errors: string[] = [];
  for (let attempt = 0; attempt < 200; attempt += 1) {
    try {
      return { decision: await decider.decide(request), errors };
    } catch (error) {
      const message = error instanceof Error ? `${error.message} / ${String((error.cause as Error | undefined)?.message)}` : String(error);
      errors.push(message);
      await new Promise((resolveWait) => setTimeout(resolveWait, 50));
    }
  }
  throw new Error(`no decision after 200 attempts: ${errors.slice(-3).join(' | ')}`);
}

async function nodeFor(key: string): Promise<{ host: string; port: number; id: string }> {
  const slot = Number(await client.call('CLUSTER', 'KEYSLOT', key));
  for (const node of cluster.nodes) {
    const direct = new Redis({ host: node.host, port: node.port, lazyConnect: true });
    await direct.connect();
    try {
      const id = String(await direct.call('CLUSTER', 'MYID'));
      const role = String(await direct.call('ROLE')).split(',')[0];
      const slots = (await direct.call('CLUSTER', 'SLOTS')) as [number, number, [string, number, string]][];
      const owner = slots.find(([from, to]) => slot >= from && slot <= to)?.[2];
      if (role === 'master' && owner?.[2] === id) return { ...node, id };
    } finally {
      direct.disconnect();
    }
  }
  throw new Error(`no master owns the slot of ${key}`);
}

/** Runs `perTenant` decisions for each tenant with bounded parallelism, while `during` runs. */
async function load(tenants: string[], perTenant: number, quota: number, during: () => Promise<void>, paceMs = 2) {
  const requests = tenants.flatMap((tenant) => Array.from({ length: perTenant }, () => input(tenant, quota)));
  const results: Decision[] = [];
  const errors: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < requests.length) {
      const request = requests[next] as DecideInput;
      next += 1;
      const outcome = await decideWithRetry(request);
      results.push(outcome.decision);
      errors.push(...outcome.errors);
      await new Promise((resolveWait) => setTimeout(resolveWait, paceMs));
    }
  };
  await Promise.all([...Array.from({ length: 8 }, () => worker()), during()]);
  return { results, errors };
}

async function eventCount(tenant: string): Promise<number> {
  const entries = streamEvents(await client.xrange(usageStreamKey(shardOf(parseTenantId(tenant), SHARDS)), '-', '+'));
  return entries.filter(([, fields]) => fields[fields.indexOf('tenant') + 1] === tenant).length;
}

describe('decider on Redis Cluster', () => {
  it('decides multi-limit requests for tenants on every master without CROSSSLOT', async () => {
    // given 40 tenants (over 256 shards, all three masters miss one with a chance of about 1e-7)
    const tenants = Array.from({ length: 40 }, () => uniqueTenant());
    // when each is decided
    const decisions = await Promise.all(tenants.map((tenant) => decider.decide(input(tenant, 100))));
    // then all are allowed
    expect(decisions.every((decision) => decision.kind === 'allowed')).toBe(true);
    // and each tenant's usage event is on the master that owns its shard's slot, read there directly
    const masters = new Set<string>();
    for (const tenant of tenants) {
      const stream = usageStreamKey(shardOf(parseTenantId(tenant), SHARDS));
      const owner = await nodeFor(stream);
      masters.add(owner.id);
      const direct = new Redis({ host: owner.host, port: owner.port, lazyConnect: true });
      await direct.connect();
      try {
        const entries = streamEvents(await direct.xrange(stream, '-', '+'));
        expect(
          entries.filter(([, fields]) => fields[fields.indexOf('tenant') + 1] === tenant),
          tenant,
        ).toHaveLength(1);
      } finally {
        direct.disconnect();
      }
    }
    // and the tenants landed on every one of the three masters
    expect(masters.size).toBe(3);
  });

  it('WAITs on the master that ran the script: the replica of each master acknowledges', async () => {
    const waiting = new RedisDecider(client, {
      shardCount: SHARDS,
      clock: systemClock,
      waitForReplicas: { replicas: 1, timeoutMs: 2_000 },
    });
    const tenants = Array.from({ length: 40 }, () => uniqueTenant());
    const decisions = await Promise.all(tenants.map((tenant) => waiting.decide(input(tenant, 100))));
    // a WAIT sent to another node would count that node's replicas for nothing written there: 0 or an error
    expect(decisions.every((decision) => decision.kind === 'allowed' && decision.replicasAcked === 1)).toBe(true);
  });

  it('keeps exact counts while the slots under load move to another master', async () => {
    // given tenants whose shard lives on one master, each with a quota of 60 (20 requests of 3)
    const first = uniqueTenant();
    const source = await nodeFor(usageStreamKey(shardOf(parseTenantId(first), SHARDS)));
    const tenants = [first];
    while (tenants.length < 4) {
      const candidate = uniqueTenant();
      if ((await nodeFor(usageStreamKey(shardOf(parseTenantId(candidate), SHARDS)))).id === source.id) tenants.push(candidate);
    }
    const target = await (async () => {
      for (const node of cluster.nodes) {
        const direct = new Redis({ host: node.host, port: node.port });
        try {
          const id = String(await direct.call('CLUSTER', 'MYID'));
          const role = String(await direct.call('ROLE')).split(',')[0];
          if (role === 'master' && id !== source.id) return id;
        } finally {
          direct.disconnect();
        }
      }
      throw new Error('no other master');
    })();
    // when 30 requests per tenant run while every slot of that master moves away
    const { results } = await load(tenants, 30, 60, async () => {
      await execFileAsync(
        'redis-cli',
        [
          '--cluster',
          'reshard',
          `${source.host}:${source.port}`,
          '--cluster-from',
          source.id,
          '--cluster-to',
          target,
          '--cluster-slots',
          '16384',
          '--cluster-yes',
        ],
        { maxBuffer: 64 * 1024 * 1024 },
      );
    });
    // then each tenant got exactly 20 admissions and 20 events, and the slots did move
    expect(results.filter((decision) => decision.kind === 'allowed' || decision.kind === 'warned')).toHaveLength(4 * 20);
    for (const tenant of tenants) expect(await eventCount(tenant)).toBe(20);
    expect((await nodeFor(usageStreamKey(shardOf(parseTenantId(first), SHARDS)))).id).toBe(target);
  }, 180_000);

  it('keeps exact counts through a master failover to its replica', async () => {
    // given tenants on one master
    const first = uniqueTenant();
    const master = await nodeFor(usageStreamKey(shardOf(parseTenantId(first), SHARDS)));
    const tenants = [first];
    while (tenants.length < 4) {
      const candidate = uniqueTenant();
      if ((await nodeFor(usageStreamKey(shardOf(parseTenantId(candidate), SHARDS)))).id === master.id) tenants.push(candidate);
    }
    // when its replica takes over in the middle of the load (150 requests per tenant, paced)
    let promotedPort = 0;
    const { results, errors } = await load(
      tenants,
      150,
      60,
      async () => {
        await new Promise((resolveWait) => setTimeout(resolveWait, 100));
        for (const node of cluster.nodes) {
          const direct = new Redis({ host: node.host, port: node.port });
          try {
            const replication = String(await direct.info('replication'));
            if (replication.includes('role:slave') && replication.includes(`master_port:${master.port}`)) {
              // A manual failover gives up after 5 s if the master does not answer in
              // time; ask again (up to 4 times) until the replica is promoted.
              const deadline = Date.now() + 25_000;
              let askedAt = 0;
              while (!String(await direct.info('replication')).includes('role:master')) {
                if (Date.now() > deadline) {
                  const log = readFileSync(join(scratch, 'logs', `redis-cluster-${node.port}.log`), 'utf8');
                  throw new Error(`replica ${node.port} was not promoted:\n${log.split('\n').slice(-12).join('\n')}`);
                }
                if (Date.now() - askedAt > 6_000) {
                  await direct.call('CLUSTER', 'FAILOVER');
                  askedAt = Date.now();
                }
                await new Promise((resolveWait) => setTimeout(resolveWait, 20));
              }
              promotedPort = node.port;
              return;
            }
          } finally {
            direct.disconnect();
          }
        }
        throw new Error('no replica of the master');
      },
      10,
    );
    console.log(`failover: ${errors.length} failed attempts, e.g. ${errors.slice(0, 3).join(' | ')}`);
    // then the counts are exact and the slot has a new master
    expect(results.filter((decision) => decision.kind === 'allowed' || decision.kind === 'warned')).toHaveLength(4 * 20);
    for (const tenant of tenants) expect(await eventCount(tenant)).toBe(20);
    // (the old master may claim the slot for a moment until it learns of the failover)
    const owner = await waitFor(
      'the promoted replica to own the slot',
      async () => {
        const found = await nodeFor(usageStreamKey(shardOf(parseTenantId(first), SHARDS))).catch(() => undefined);
        return found?.port === promotedPort && found;
      },
      { timeoutMs: 10_000 },
    );
    expect(owner.port).toBe(promotedPort);
  }, 180_000);
});
