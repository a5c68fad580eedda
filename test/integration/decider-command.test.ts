/**
 * decide.lua's call as one pre-encoded command (`src/decider/decide-command.ts`) against a real Redis: the script
 * cache flushed again and again while 128 decisions are in flight (NOSCRIPT → EVAL) with exact counts and no
 * failed request, and a call far larger than the encoder's first 64 kB buffer.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { RedisDecider, connectDeciderRedis, shardOf, usageStreamKey, type DecideInput, type LimitSpec } from '../../src/decider/index.js';
import { parseEventId, parseKeyId, parseLimitId, parseTenantId, systemClock } from '../../src/shared/index.js';
import { closeAfterAll } from '../support/teardown.js';
import { testStack, uniqueTenant } from '../support/stack.js';
import { MONTH } from '../support/time.js';
import { streamEvents } from '../support/usage-stream.js';

const SHARDS = 64;
const redis = await connectDeciderRedis({ url: testStack().redisUrl, commandTimeoutMs: 5_000 });
const admin = new Redis(testStack().redisUrl);
closeAfterAll(() => [redis, admin]);

const limits = (quota: number): LimitSpec[] => [
  {
    id: parseLimitId('burst'),
    scope: 'apiKey',
    algorithm: { kind: 'token-bucket', capacity: 1_000_000, refillAmount: 1, refillPeriodMs: 3_600_000 },
    mode: 'hard',
    onDeciderDown: 'open',
  },
  {
    id: parseLimitId('month'),
    scope: 'tenant',
    algorithm: { kind: 'period-quota', limit: quota, period: MONTH, thresholdsPercent: [80] },
    mode: 'hard',
    onDeciderDown: 'open',
  },
];

function input(tenant: string, quota: number, requestId = `r-${randomBytes(6).toString('hex')}`): DecideInput {
  return {
    tenant: parseTenantId(tenant),
    keyId: parseKeyId('key-1'),
    requestId: parseEventId(requestId),
    operation: 'listProducts',
    cost: 3,
    limits: limits(quota),
    billingPeriod: MONTH,
    policyVersion: 1,
  };
}

/** The tenant's usage events in its shard's stream. */
async function eventsOf(tenant: string): Promise<number> {
  const entries = streamEvents(await redis.xrange(usageStreamKey(shardOf(parseTenantId(tenant), SHARDS)), '-', '+'));
  return entries.filter(([, fields]) => fields[fields.indexOf('tenant') + 1] === tenant).length;
}

describe('the decide call as one pre-encoded command', () => {
  it('absorbs SCRIPT FLUSH while 128 decisions are in flight: none fails, each tenant admits exactly floor(L/c), one event each', async () => {
    const decider = new RedisDecider(redis, { shardCount: SHARDS, clock: systemClock });
    // 16 tenants with a quota of 300 units, 150 requests of cost 3 each: 100 admitted each, whatever the interleaving
    const tenants = Array.from({ length: 16 }, () => uniqueTenant());
    const perTenant = 150;
    let next = 0;
    const flushes: Promise<unknown>[] = [];
    const kinds: string[] = [];
    await Promise.all(
      Array.from({ length: 128 }, async () => {
        for (let at = next++; at < tenants.length * perTenant; at = next++) {
          kinds.push((await decider.decide(input(tenants[at % tenants.length] as string, 300))).kind);
          // the script cache emptied after every 40th answer, while the other calls are in flight
          if (kinds.length % 40 === 0) flushes.push(admin.script('FLUSH'));
        }
      }),
    );
    await Promise.all(flushes);
    expect(flushes).toHaveLength(60);
    expect(kinds).toHaveLength(tenants.length * perTenant);
    // admitted: allowed, or warned once the 80 % threshold is crossed (once per tenant)
    expect(kinds.filter((kind) => kind === 'allowed' || kind === 'warned')).toHaveLength(tenants.length * 100);
    expect(kinds.filter((kind) => kind === 'warned')).toHaveLength(tenants.length);
    expect(kinds.filter((kind) => kind === 'denied')).toHaveLength(tenants.length * (perTenant - 100));
    for (const tenant of tenants) expect(await eventsOf(tenant)).toBe(100);
    const stats = await admin.info('commandstats');
    expect(Number(/^cmdstat_eval:calls=(\d+)/m.exec(stats)?.[1] ?? 0)).toBeGreaterThan(0);
  });

  it('decides a call far over the encoder’s first 64 kB buffer exactly, then a small one', async () => {
    const decider = new RedisDecider(redis, { shardCount: SHARDS, clock: systemClock, maxBatchSize: 400 });
    // 4 tenants of 64 characters, 100 requests each with 128-character request ids: one call of ~400 requests, ~500 kB
    const tenants = Array.from({ length: 4 }, () => `${uniqueTenant()}-${'x'.repeat(49)}`);
    expect(tenants[0]).toHaveLength(64);
    const requests = tenants.flatMap((tenant) =>
      Array.from({ length: 100 }, (_, index) => input(tenant, 150, `${index}-${randomBytes(8).toString('hex')}-${'y'.repeat(100)}`)),
    );
    expect(requests[0]?.requestId.length).toBeGreaterThan(100);
    const decisions = await Promise.all(requests.map((request) => decider.decide(request)));
    for (const tenant of tenants) {
      const own = decisions.filter((_, index) => requests[index]?.tenant === tenant);
      expect(own.filter((decision) => decision.kind === 'allowed' || decision.kind === 'warned')).toHaveLength(50);
      expect(own.filter((decision) => decision.kind === 'denied')).toHaveLength(50);
      expect(await eventsOf(tenant)).toBe(50);
    }
    // the writer reused after the big call: a small call is framed exactly too
    const small = uniqueTenant();
    expect((await decider.decide(input(small, 100))).kind).toBe('allowed');
    expect(await eventsOf(small)).toBe(1);
  });
});
