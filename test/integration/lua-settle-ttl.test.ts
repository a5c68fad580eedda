/**
 * lua/settle.lua against a real Redis: every key a settle writes expires. The
 * admitted counter a settle creates (an overrun after a cost-0 admission, which
 * created no counter) expires when decide.lua's would: 400 days after the end of
 * the billing period the decision counted in.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { RedisDecider, connectDeciderRedis, type DecideInput, type DeciderRedis } from '../../src/decider/index.js';
import { compileRequest } from '../../src/decider/compile.js';
import { parseEventId, parseKeyId, parseLimitId, parseTenantId, systemClock } from '../../src/shared/index.js';
import { testStack, uniqueTenant } from '../support/stack.js';
import { closeAfterAll } from '../support/teardown.js';
import { MONTH } from '../support/time.js';

const SHARDS = 64;
const DAY_MS = 86_400_000;
let redis: DeciderRedis;
let decider: RedisDecider;

beforeAll(async () => {
  redis = await connectDeciderRedis({ url: testStack().redisUrl, commandTimeoutMs: 2_000 });
  decider = new RedisDecider(redis, { shardCount: SHARDS, clock: systemClock });
});

closeAfterAll(() => [redis]);

function request(tenant: string, cost: number): DecideInput {
  return {
    tenant: parseTenantId(tenant),
    keyId: parseKeyId('key-1'),
    requestId: parseEventId(`r-${randomBytes(6).toString('hex')}`),
    operation: 'listProducts',
    cost,
    limits: [
      {
        id: parseLimitId('month'),
        scope: 'tenant',
        algorithm: { kind: 'period-quota', limit: 1_000, period: MONTH, thresholdsPercent: [] },
        mode: 'hard',
        onDeciderDown: 'open',
      },
    ],
    billingPeriod: MONTH,
    policyVersion: 1,
  };
}

/** Decides one request; answers the decision time and its admitted counter's key and billing period end. */
async function admit(input: DecideInput): Promise<{ nowMs: number; admittedKey: string; billingEndMs: number }> {
  const decision = await decider.decide(input);
  expect(decision.kind).toBe('allowed');
  const compiled = compileRequest(input, { shardCount: SHARDS, localNowMs: decision.nowMs });
  return { nowMs: decision.nowMs, admittedKey: compiled.keys[2] as string, billingEndMs: compiled.billingEndMs };
}

/**
 * Whole days between `periodEndMs` and the key's expiry (negative when it never expires). The
 * scripts set a TTL relative to their `TIME` read and Redis counts it from the SET, a few ms
 * later, so the expiry itself is exact only to the day.
 */
async function daysKeptAfter(key: string, periodEndMs: number): Promise<number> {
  const expiresAtMs = await redis.pexpiretime(key);
  return expiresAtMs < 0 ? expiresAtMs : Math.floor((expiresAtMs - periodEndMs) / DAY_MS);
}

describe('settle.lua key lifetimes', () => {
  it('gives the admitted counter an overrun creates after a cost-0 admission the expiry decide.lua gives it', async () => {
    // given a request admitted at cost 0, which created no admitted counter
    const tenant = uniqueTenant('ttl');
    const free = request(tenant, 0);
    const decided = await admit(free);
    expect(await redis.exists(decided.admittedKey)).toBe(0);
    // when it is settled with an actual cost of 5 (an overrun)
    const settled = await decider.settle({ ...free, actual: 5, decidedAtMs: decided.nowMs });
    expect(settled).toMatchObject({ status: 'settled', refund: -5 });
    // then the counter holds the overrun and expires 400 days after the billing period's end,
    // as the counter of a paid admission (created by decide.lua) does
    expect(await redis.get(decided.admittedKey)).toBe('5');
    expect(await daysKeptAfter(decided.admittedKey, decided.billingEndMs)).toBe(400);
    const paid = await admit(request(uniqueTenant('ttl'), 3));
    expect(await daysKeptAfter(paid.admittedKey, paid.billingEndMs)).toBe(400);
  });
});
