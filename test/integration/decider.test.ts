/**
 * lua/decide.lua and RedisDecider against a real Redis: exactness under
 * concurrency, all-or-nothing denials, idempotent retries, input validation
 * before Redis, script-cache loss, and the differential check against the
 * pure TypeScript model.
 */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RedisDecider,
  connectDeciderRedis,
  createDeciderRedis,
  shardOf,
  usageStreamKey,
  type DecideInput,
  type DeciderRedis,
  type LimitSpec,
} from '../../src/decider/index.js';
import { decodeBucketState, decodeMsgpackIntegers } from '../../src/decider/bucket-state.js';
import { compileRequest } from '../../src/decider/compile.js';
import { compileBatch } from '../../src/decider/decide-args.js';
import { decideModel, emptyModelState, settleModel, type ModelRequest, type RawDecision } from '../../src/decider/model/limits.js';
import { decodeDecideBatch, decodeSettle } from '../../src/decider/replies.js';
import { compileSettle } from '../../src/decider/settle-args.js';
import {
  DependencyError,
  ValidationError,
  parseEventId,
  parseKeyId,
  parseLimitId,
  parseTenantId,
  systemClock,
} from '../../src/shared/index.js';
import { closeAfterAll } from '../support/teardown.js';
import { testStack, uniqueTenant } from '../support/stack.js';
import { MONTH } from '../support/time.js';
import { streamEvents } from '../support/usage-stream.js';

const SHARDS = 64;
let redis: DeciderRedis;
let decider: RedisDecider;

beforeAll(async () => {
  redis = await connectDeciderRedis({ url: testStack().redisUrl, commandTimeoutMs: 2_000 });
  decider = new RedisDecider(redis, { shardCount: SHARDS, clock: systemClock });
});

closeAfterAll(() => [redis]);

const requestId = (): ReturnType<typeof parseEventId> => parseEventId(`r-${randomBytes(6).toString('hex')}`);

function input(tenant: string, limits: LimitSpec[], cost: number, extra: Partial<DecideInput> = {}): DecideInput {
  return {
    tenant: parseTenantId(tenant),
    keyId: parseKeyId('key-1'),
    requestId: requestId(),
    operation: 'listProducts',
    cost,
    limits,
    billingPeriod: MONTH,
    policyVersion: 3,
    ...extra,
  };
}

const quota = (limit: number, mode: LimitSpec['mode'] = 'hard', thresholdsPercent: number[] = []): LimitSpec => ({
  id: parseLimitId('month'),
  scope: 'tenant',
  algorithm: { kind: 'period-quota', limit, period: MONTH, thresholdsPercent },
  mode,
  onDeciderDown: 'open',
});

const bucket = (capacity: number, refillAmount: number, refillPeriodMs: number, mode: LimitSpec['mode'] = 'hard'): LimitSpec => ({
  id: parseLimitId('burst'),
  scope: 'apiKey',
  algorithm: { kind: 'token-bucket', capacity, refillAmount, refillPeriodMs },
  mode,
  onDeciderDown: 'open',
});

/** The tenant's events in its shard's stream (other files append to the same low shards of database 0 meanwhile). */
async function streamLength(tenant: string): Promise<number> {
  const entries = streamEvents(await redis.xrange(usageStreamKey(shardOf(parseTenantId(tenant), SHARDS)), '-', '+'));
  return entries.filter(([, fields]) => fields[fields.indexOf('tenant') + 1] === tenant).length;
}

describe('exactness under concurrency', () => {
  it.each([
    ['a monthly quota', () => [quota(100)]],
    ['a token bucket that refills once an hour', () => [bucket(100, 1, 3_600_000)]],
    ['both at once', () => [quota(100), bucket(100, 1, 3_600_000)]],
  ])('admits exactly floor(limit / cost) of 60 parallel requests with %s, every round', async (_, limits) => {
    for (let round = 0; round < 5; round += 1) {
      // given a fresh tenant and a limit of 100 units
      const tenant = uniqueTenant();
      const before = await streamLength(tenant);
      // when 60 requests of cost 7 arrive at once
      const decisions = await Promise.all(Array.from({ length: 60 }, () => decider.decide(input(tenant, limits(), 7))));
      // then exactly 14 are admitted, each with one usage event
      const admitted = decisions.filter((decision) => decision.kind === 'allowed');
      expect(admitted).toHaveLength(14);
      expect(decisions.filter((decision) => decision.kind === 'denied')).toHaveLength(46);
      expect((await streamLength(tenant)) - before).toBe(14);
    }
  });
});

describe('all or nothing', () => {
  it('a denied request leaves every key byte-identical and appends no event', async () => {
    // given a tenant whose burst bucket is spent but whose quota has room
    const tenant = uniqueTenant();
    const limits = [quota(1_000), bucket(10, 1, 3_600_000)];
    expect((await decider.decide(input(tenant, limits, 10))).kind).toBe('allowed');
    const probe = compileRequest(input(tenant, limits, 5), { shardCount: SHARDS, localNowMs: Date.now() });
    const stream = usageStreamKey(probe.shard);
    const keys = [...probe.keys, stream];
    const dump = async (): Promise<(string | null)[]> =>
      Promise.all(keys.map(async (key) => (await redis.dumpBuffer(key))?.toString('hex') ?? null));
    const before = await dump();
    const ttlBefore = await Promise.all(probe.keys.map((key) => redis.pttl(key)));
    // when a request that fits the quota but not the bucket is decided
    const decision = await decider.decide(input(tenant, limits, 5));
    // then it is denied by the bucket and nothing changed
    expect(decision).toMatchObject({ kind: 'denied', limitId: 'burst', isQuota: false });
    expect(await dump()).toEqual(before);
    const ttlAfter = await Promise.all(probe.keys.map((key) => redis.pttl(key)));
    ttlAfter.forEach((ttl, index) => {
      const previous = ttlBefore[index] as number;
      // a TTL only counts down (or stays absent): nothing re-armed it
      expect(ttl <= previous || previous < 0).toBe(true);
    });
  });

  it('denies with QUOTA_EXHAUSTED semantics and a retry at the period end when the quota is spent', async () => {
    const tenant = uniqueTenant();
    await decider.decide(input(tenant, [quota(10)], 10));
    const decision = await decider.decide(input(tenant, [quota(10)], 1));
    expect(decision.kind).toBe('denied');
    if (decision.kind !== 'denied') return;
    expect(decision.isQuota).toBe(true);
    expect(decision.retryAfterMs).toBe(decision.limits[0]?.resetMs);
  });

  it('denies a cost above the limit with no retry time, and admits cost 0', async () => {
    const tenant = uniqueTenant();
    const tooBig = await decider.decide(input(tenant, [bucket(10, 1, 1_000)], 11));
    expect(tooBig).toMatchObject({ kind: 'denied', retryAfterMs: null });
    const free = await decider.decide(input(tenant, [bucket(10, 1, 1_000)], 0));
    expect(free).toMatchObject({ kind: 'allowed', limits: [{ remaining: 10 }] });
  });
});

describe('idempotency', () => {
  it('a retried request returns the first decision, takes nothing and adds no event', async () => {
    // given an admitted request
    const tenant = uniqueTenant();
    const first = input(tenant, [quota(100)], 30);
    const decision = await decider.decide(first);
    const events = await streamLength(tenant);
    // when the same request id is decided again (even with another cost)
    const retry = await decider.decide({ ...first, cost: 50 });
    // then
    expect(decision).toMatchObject({ kind: 'allowed', isReplay: false, limits: [{ remaining: 70 }] });
    expect(retry).toMatchObject({ kind: 'allowed', isReplay: true, limits: [{ remaining: 70 }] });
    if (retry.kind === 'allowed' && decision.kind === 'allowed') expect(retry.streamId).toBe(decision.streamId);
    expect(await streamLength(tenant)).toBe(events);
    const next = await decider.decide(input(tenant, [quota(100)], 1));
    expect(next).toMatchObject({ kind: 'allowed', limits: [{ remaining: 69 }] });
  });

  it('tells a lost call sent again (its own attempt token: its first decision) from a client retry and from a twin in one batch (replays)', async () => {
    // given a request decided by a call whose reply the decider never saw (attempt token A)
    const tenant = uniqueTenant();
    const request = input(tenant, [quota(100)], 30);
    const compiled = compileRequest(request, { shardCount: SHARDS, localNowMs: Date.now() });
    const call = async (attempts: string[], requests = [compiled]): Promise<RawDecision[]> => {
      const { keys, args } = compileBatch(requests, 60_000, attempts);
      return decodeDecideBatch(
        await redis.tgDecideBuffer(keys.length, ...keys, ...args),
        requests.map((one) => one.model.limits.length),
        attempts,
      );
    };
    const [lost] = await call(['A']);
    // when a client retries it (another call: token B), and then the decider sends the lost call again (token A)
    const [clientRetry] = await call(['B']);
    const [sentAgain] = await call(['A']);
    // then the client's retry is a replay (the edge answers it as one: it must not run the operation again),
    // the lost call's own decision is not, and both carry the first decision, nothing taken twice
    expect(lost).toMatchObject({ kind: 0, isReplay: false });
    expect(clientRetry).toMatchObject({ kind: 0, isReplay: true, nowMs: lost?.nowMs, streamId: lost?.streamId });
    expect(sentAgain).toMatchObject({ kind: 0, isReplay: false, nowMs: lost?.nowMs, streamId: lost?.streamId });
    expect(sentAgain?.limits).toEqual(lost?.limits);
    expect(await streamLength(tenant)).toBe(1);
    // and a request id twice in one batch (two concurrent calls of a client: C and D): the second is a replay
    const twin = compileRequest(input(tenant, [quota(100)], 5), { shardCount: SHARDS, localNowMs: Date.now() });
    const [one, two] = await call(['C', 'D'], [twin, twin]);
    expect(one).toMatchObject({ kind: 0, isReplay: false });
    expect(two).toMatchObject({ kind: 0, isReplay: true, streamId: one?.streamId });
    // and without a token ("-") a record is never taken as the caller's own
    expect((await call(['-']))[0]).toMatchObject({ isReplay: true });
  });

  it('survives SCRIPT FLUSH: the next call reloads the script by itself', async () => {
    const tenant = uniqueTenant();
    await redis.script('FLUSH');
    expect((await decider.decide(input(tenant, [quota(5)], 2))).kind).toBe('allowed');
  });
});

describe('input validation before Redis', () => {
  // A decider on a port where nothing listens: a validation error proves no Redis call was needed.
  const dead = createDeciderRedis({ url: 'redis://127.0.0.1:1', commandTimeoutMs: 50, connectTimeoutMs: 50 });
  dead.on('error', () => undefined);
  const offline = new RedisDecider(dead, { shardCount: SHARDS, clock: systemClock });
  afterAll(() => dead.disconnect());

  it.each([1.5, -1, 2 ** 53, Number.NaN, Number.POSITIVE_INFINITY])('rejects cost %s with INVALID_INPUT', async (cost) => {
    const error = await offline.decide(input('acme', [quota(10)], cost)).catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).code).toBe('INVALID_INPUT');
  });

  it('rejects invalid limits, listing every problem', async () => {
    const bad: LimitSpec = { ...bucket(0, 1, 1_000), id: parseLimitId('b') };
    const error = await offline.decide(input('acme', [bad, { ...quota(-5) }], 1)).catch((reason: unknown) => reason);
    expect((error as Error).message).toBe(
      'invalid limits:\nlimits[0].algorithm.capacity must be an integer in 1..9007199254740991, got 0\n' +
        'limits[1].algorithm.limit must be an integer in 1..9007199254740991, got -5',
    );
  });

  it('reports an unreachable Redis as REDIS_UNAVAILABLE', async () => {
    const error = await offline.decide(input('acme', [quota(10)], 1)).catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(DependencyError);
    expect((error as DependencyError).code).toBe('REDIS_UNAVAILABLE');
  });
});

// ------------------------------------------------------------ differential

type Op =
  | { kind: 'decide'; limitSet: number; cost: number; reuse: boolean; sleepMs: number }
  | { kind: 'settle'; pick: number; actual: number; sleepMs: number };

function limitSets(): LimitSpec[][] {
  const id = parseLimitId;
  return [
    [
      {
        id: id('tb'),
        scope: 'tenant',
        algorithm: { kind: 'token-bucket', capacity: 20, refillAmount: 3, refillPeriodMs: 7 },
        mode: 'hard',
        onDeciderDown: 'open',
      },
    ],
    [{ id: id('fw'), scope: 'tenant', algorithm: { kind: 'fixed-window', limit: 15, windowMs: 23 }, mode: 'hard', onDeciderDown: 'open' }],
    [
      {
        id: id('sw'),
        scope: 'tenant',
        algorithm: { kind: 'sliding-window', limit: 17, windowMs: 19 },
        mode: 'hard',
        onDeciderDown: 'open',
      },
    ],
    [
      {
        id: id('pq'),
        scope: 'tenant',
        algorithm: { kind: 'period-quota', limit: 60, period: MONTH, thresholdsPercent: [50, 80, 100] },
        mode: 'soft',
        onDeciderDown: 'open',
      },
      { id: id('cc'), scope: 'apiKey', algorithm: { kind: 'concurrency', slots: 3, leaseTtlMs: 11 }, mode: 'hard', onDeciderDown: 'open' },
      // slow enough that refunds and overruns stay visible for the rest of a sequence
      {
        id: id('tbslow'),
        scope: 'tenant',
        algorithm: { kind: 'token-bucket', capacity: 70, refillAmount: 1, refillPeriodMs: 5_000 },
        mode: 'hard',
        onDeciderDown: 'open',
      },
    ],
    [
      {
        id: id('tb2'),
        scope: 'apiKey',
        algorithm: { kind: 'token-bucket', capacity: 9, refillAmount: 1, refillPeriodMs: 3 },
        mode: 'shadow',
        onDeciderDown: 'open',
      },
      { id: id('fw2'), scope: 'tenant', algorithm: { kind: 'fixed-window', limit: 12, windowMs: 13 }, mode: 'soft', onDeciderDown: 'open' },
      {
        id: id('sw2'),
        scope: 'tenant',
        algorithm: { kind: 'sliding-window', limit: 30, windowMs: 29 },
        mode: 'defer',
        onDeciderDown: 'open',
      },
    ],
  ];
}

const sleepArb = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 12 }));
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('decide' as const),
      limitSet: fc.nat(4),
      cost: fc.oneof(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 9, max: 35 })),
      reuse: fc.boolean(),
      sleepMs: sleepArb,
    }),
  },
  // settle one of the requests so far (admitted or not, again or not) with an actual cost below or above it
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('settle' as const),
      pick: fc.nat(),
      actual: fc.integer({ min: 0, max: 40 }),
      sleepMs: sleepArb,
    }),
  },
);

interface Mutation {
  /** Applied to the model's copy of each limit; the identity for the real model. */
  mutate: (request: ModelRequest) => ModelRequest;
}

const comparable = (raw: RawDecision) => ({ ...raw, streamId: raw.streamId === '' ? '' : 'set' });

/** Runs one sequence against Lua and the model; returns the first divergence, if any. */
async function runSequence(ops: Op[], mutation: Mutation): Promise<string | undefined> {
  const tenant = uniqueTenant('d');
  const sets = limitSets();
  const state = emptyModelState();
  const sent: DecideInput[] = [];
  for (const [index, op] of ops.entries()) {
    if (op.sleepMs > 0) await new Promise((resolveSleep) => setTimeout(resolveSleep, op.sleepMs));
    if (op.kind === 'settle') {
      const request = sent[op.pick % Math.max(1, sent.length)];
      if (request === undefined) continue;
      const decidedAt =
        state.records.get(compileRequest(request, { shardCount: SHARDS, localNowMs: Date.now() }).model.recordKey)?.nowMs ?? Date.now();
      const { keys, args } = compileSettle({ ...request, actual: op.actual, decidedAtMs: decidedAt }, { shardCount: SHARDS });
      const lua = decodeSettle(await redis.tgSettle(keys.length, ...keys, ...args));
      const compiled = compileRequest(request, { shardCount: SHARDS, localNowMs: decidedAt });
      const expected = settleModel(state, mutation.mutate(compiled.model), op.actual, lua.nowMs);
      const statusOf = { settled: 1, replay: 2, unknown: 0 } as const;
      const [a, b] = [
        JSON.stringify({ status: statusOf[lua.status], refund: lua.refund }),
        JSON.stringify({ status: expected.status, refund: expected.refund }),
      ];
      if (a !== b) return `op ${index} ${JSON.stringify(op)}:\n lua   ${a}\n model ${b}`;
      continue;
    }
    const previous = sent.at(-1);
    const request: DecideInput =
      op.reuse && previous !== undefined
        ? { ...input(tenant, sets[op.limitSet] as LimitSpec[], op.cost, { isDeferrable: true }), requestId: previous.requestId }
        : input(tenant, sets[op.limitSet] as LimitSpec[], op.cost, { isDeferrable: true });
    sent.push(request);
    const compiled = compileRequest(request, { shardCount: SHARDS, localNowMs: Date.now() });
    const { keys, args } = compileBatch([compiled], 60_000);
    const [raw] = decodeDecideBatch(await redis.tgDecideBuffer(keys.length, ...keys, ...args), [compiled.model.limits.length]);
    if (raw === undefined) return `op ${index}: no reply`;
    const expected = decideModel(state, mutation.mutate(compiled.model), raw.nowMs);
    const [a, b] = [JSON.stringify(comparable(raw)), JSON.stringify(comparable(expected))];
    if (a !== b) return `op ${index} ${JSON.stringify(op)}:\n lua   ${a}\n model ${b}`;
  }
  return undefined;
}

describe('differential: decide.lua and settle.lua against the TypeScript model', () => {
  const seed = Number(process.env['TOLLGATE_PROP_SEED'] ?? Date.now() % 2 ** 31);

  it('gives identical decisions, remaining, reset and retry-after on random sequences', async () => {
    // Replay a failure with TOLLGATE_PROP_SEED=<seed printed below>.
    console.log(`differential seed: ${seed}`);
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 30 }), async (ops) => {
        const divergence = await runSequence(ops, { mutate: (request) => request });
        expect(divergence).toBeUndefined();
      }),
      { numRuns: Number(process.env['TOLLGATE_PROP_RUNS'] ?? 40), seed },
    );
  }, 600_000);

  it('catches a planted off-by-one in a copy of the model (each limit one unit larger)', async () => {
    const planted: Mutation = {
      mutate: (request) => ({ ...request, limits: request.limits.map((limit) => ({ ...limit, p1: limit.p1 + 1 })) }),
    };
    const result = await fc.check(
      fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 30 }), async (ops) => {
        expect(await runSequence(ops, planted)).toBeUndefined();
      }),
      { numRuns: 40, seed },
    );
    expect(result.failed).toBe(true);
  }, 240_000);
});

describe('settle', () => {
  const concurrency: LimitSpec = {
    id: parseLimitId('inflight'),
    scope: 'apiKey',
    algorithm: { kind: 'concurrency', slots: 1, leaseTtlMs: 60_000 },
    mode: 'hard',
    onDeciderDown: 'open',
  };

  it('refunds requested − actual to the bucket, the quota and the admitted counter, once', async () => {
    // given a request priced at 50 that turned out to cost 3
    const tenant = uniqueTenant();
    const limits = [quota(1_000), bucket(100, 1, 3_600_000)];
    const request = input(tenant, limits, 50);
    const decision = await decider.decide(request);
    expect(decision).toMatchObject({ kind: 'allowed', limits: [{ remaining: 950 }, { remaining: 50 }] });
    // when it is settled (twice: a retry)
    const settled = await decider.settle({ ...request, actual: 3, decidedAtMs: decision.nowMs });
    const again = await decider.settle({ ...request, actual: 3, decidedAtMs: decision.nowMs });
    // then 47 came back to every limit, exactly once, and the next request sees it
    expect(settled).toMatchObject({ status: 'settled', refund: 47 });
    expect(again).toMatchObject({ status: 'replay', refund: 47, streamId: settled.streamId });
    const next = await decider.decide(input(tenant, limits, 1));
    expect(next).toMatchObject({ kind: 'allowed', limits: [{ remaining: 996 }, { remaining: 96 }] });
    const compiled = compileRequest(request, { shardCount: SHARDS, localNowMs: decision.nowMs });
    expect(await redis.get(compiled.keys[2] as string)).toBe('4');
    const bucketState = await redis.getBuffer(compiled.model.limits[1]?.key as string);
    expect(bucketState && decodeBucketState('token-bucket', bucketState)).toMatchObject({ tokens: 96 });
    const [entry] = await redis.xrange(usageStreamKey(compiled.shard), settled.streamId, settled.streamId);
    expect(entry?.[1]).toEqual(expect.arrayContaining(['type', 'usage.settled.v1', 'requested', '50', 'actual', '3', 'refund', '47']));
    // both events name the billing period the decision counted in
    const billingStart = String(compiled.billingStartMs);
    expect(entry?.[1]).toEqual(expect.arrayContaining(['bp', billingStart]));
    const [reserved] = streamEvents(
      await redis.xrange(usageStreamKey(compiled.shard), decision.kind === 'allowed' ? decision.streamId : '-', '+', 'COUNT', 1),
    );
    expect(reserved?.[1]).toEqual(expect.arrayContaining(['type', 'usage.reserved.v1', 'cost', '50', 'bp', billingStart]));
  });

  it('takes an overrun (actual above requested) instead of dropping it', async () => {
    const tenant = uniqueTenant();
    const limits = [quota(1_000)];
    const request = input(tenant, limits, 10);
    const decision = await decider.decide(request);
    expect(await decider.settle({ ...request, actual: 25, decidedAtMs: decision.nowMs })).toMatchObject({ status: 'settled', refund: -15 });
    expect(await decider.decide(input(tenant, limits, 1))).toMatchObject({ limits: [{ remaining: 974 }] });
  });

  it('releases the concurrency lease so the next request fits', async () => {
    const tenant = uniqueTenant();
    const request = input(tenant, [concurrency], 1);
    const first = await decider.decide(request);
    expect(first.kind).toBe('allowed');
    expect((await decider.decide(input(tenant, [concurrency], 1))).kind).toBe('denied');
    await decider.settle({ ...request, actual: 1, decidedAtMs: first.nowMs });
    expect((await decider.decide(input(tenant, [concurrency], 1))).kind).toBe('allowed');
  });

  it('changes nothing for a request that was never admitted', async () => {
    const tenant = uniqueTenant();
    const before = await streamLength(tenant);
    const result = await decider.settle({ ...input(tenant, [quota(10)], 5), actual: 0, decidedAtMs: Date.now() });
    expect(result).toMatchObject({ status: 'unknown', refund: 0, streamId: '' });
    expect(await streamLength(tenant)).toBe(before);
  });
});

describe('bucket state decoding', () => {
  it('reads every integer width Redis cmsgpack writes, exactly', async () => {
    const values = [
      0,
      1,
      127,
      128,
      255,
      256,
      65_535,
      65_536,
      2 ** 32 - 1,
      2 ** 32,
      1_763_900_000_123,
      2 ** 53 - 1,
      -1,
      -32,
      -33,
      -128,
      -129,
      -32_768,
      -32_769,
      -(2 ** 31),
      -(2 ** 31) - 1,
      -(2 ** 53) + 1,
    ];
    const packed = (await redis.callBuffer(
      'EVAL',
      'local t = {} for i = 1, #ARGV do t[i] = tonumber(ARGV[i]) end return cmsgpack.pack(unpack(t))',
      '0',
      ...values.map(String),
    )) as Buffer;
    expect(decodeMsgpackIntegers(packed)).toEqual(values);
  });
});

describe('whale tenants split over sub-shards', () => {
  it('never admits more than the limit, and at saturation at most subShards × (cost − 1) units less', async () => {
    // given a tenant split over 4 sub-shards with a monthly quota of 102 (parts 26, 26, 25, 25) and a bucket of 62
    const tenant = uniqueTenant('whale');
    const limits = [quota(102), bucket(62, 1, 3_600_000)];
    const subShards = 4;
    const cost = 3;
    // when far more requests than fit arrive at once: 30 for each part (a part is chosen by the request id), so every
    // part is saturated (30 × 3 > 16) and the lower bound applies
    const partOfRequest = (request: DecideInput): number =>
      compileRequest(request, { shardCount: SHARDS, localNowMs: Date.now() }).part as number;
    const requests: DecideInput[] = [];
    const drawn = new Map<number, number>();
    while (requests.length < 120) {
      const request = input(tenant, limits, cost, { subShards });
      const part = partOfRequest(request);
      if ((drawn.get(part) ?? 0) === 30) continue;
      drawn.set(part, (drawn.get(part) ?? 0) + 1);
      requests.push(request);
    }
    const decisions = await Promise.all(requests.map((request) => decider.decide(request)));
    const admittedRequests = requests.filter((_, index) => decisions[index]?.kind === 'allowed');
    // then each part admitted exactly floor(its share / cost) of what reached it: the bucket (62 → 16, 16, 15, 15) binds
    const perPart = new Map<number, number>();
    for (const request of requests) perPart.set(partOfRequest(request), (perPart.get(partOfRequest(request)) ?? 0) + 1);
    const shares = [16, 16, 15, 15];
    const expected = [...perPart.entries()].reduce(
      (sum, [part, arrived]) => sum + Math.min(arrived, Math.floor((shares[part] as number) / cost)),
      0,
    );
    expect(admittedRequests).toHaveLength(expected);
    // never over the tenant's limit, and (every part saturated here) at most 4 × 2 units under it
    const admittedCost = admittedRequests.length * cost;
    expect(admittedCost).toBeLessThanOrEqual(62);
    expect([...perPart.values()]).toEqual([30, 30, 30, 30]);
    expect(admittedCost).toBeGreaterThanOrEqual(62 - subShards * (cost - 1));
    // the parts live on 4 different logical shards, and the audit's sum of the parts' admitted counters is exact
    const compiled = requests.map((request) => compileRequest(request, { shardCount: SHARDS, localNowMs: Date.now() }));
    expect(new Set(compiled.map((request) => request.shard)).size).toBe(subShards);
    const admittedKeys = [...new Set(compiled.map((request) => request.keys[2] as string))];
    expect(admittedKeys.every((key) => /:t:[a-z0-9-]+:u:\d:a:v1:/.test(key))).toBe(true);
    const counters = await Promise.all(admittedKeys.map(async (key) => Number((await redis.get(key)) ?? '0')));
    expect(counters.reduce((sum, value) => sum + value, 0)).toBe(admittedCost);
  });

  it('sends a retry to the same part, which returns the first decision', async () => {
    const tenant = uniqueTenant('whale');
    const request = input(tenant, [quota(1_000)], 5, { subShards: 8 });
    const first = await decider.decide(request);
    const again = await decider.decide(request);
    expect(first).toMatchObject({ kind: 'allowed', isReplay: false });
    expect(again).toMatchObject({ kind: 'allowed', isReplay: true, streamId: first.kind === 'allowed' ? first.streamId : '' });
  });

  it('rejects a split whose limit cannot be divided, before Redis', async () => {
    const tenant = uniqueTenant('whale');
    await expect(decider.decide(input(tenant, [quota(3)], 1, { subShards: 4 }))).rejects.toThrow(/cannot be divided over 4 sub-shards/);
    await expect(decider.decide(input(tenant, [quota(3)], 1, { subShards: 65 }))).rejects.toThrow(ValidationError);
  });
});

describe('key lifetimes', () => {
  it('keeps a request record for the decider default, or for the lifetime the request asks (idempotency keys)', async () => {
    const tenant = uniqueTenant('ttl');
    const plain = input(tenant, [quota(100)], 1);
    const keyed = input(tenant, [quota(100)], 1, { recordTtlMs: 86_400_000 });
    await decider.decide(plain);
    await decider.decide(keyed);
    const recordTtl = async (request: DecideInput): Promise<number> =>
      redis.pttl(compileRequest(request, { shardCount: SHARDS, localNowMs: Date.now() }).keys[1] as string);
    const [plainTtl, keyedTtl] = [await recordTtl(plain), await recordTtl(keyed)];
    expect(plainTtl).toBeGreaterThan(14 * 60_000);
    expect(plainTtl).toBeLessThanOrEqual(15 * 60_000);
    expect(keyedTtl).toBeGreaterThan(23 * 3_600_000);
    await expect(decider.decide(input(tenant, [quota(100)], 1, { recordTtlMs: 999 }))).rejects.toThrow(ValidationError);
  });

  it('gives every key a request writes a TTL that outlives what it holds', async () => {
    const tenant = uniqueTenant('ttl');
    const id = parseLimitId;
    const limits: LimitSpec[] = [
      {
        id: id('tb'),
        scope: 'apiKey',
        algorithm: { kind: 'token-bucket', capacity: 50, refillAmount: 1, refillPeriodMs: 1_000 },
        mode: 'hard',
        onDeciderDown: 'open',
      },
      {
        id: id('fw'),
        scope: 'tenant',
        algorithm: { kind: 'fixed-window', limit: 50, windowMs: 60_000 },
        mode: 'hard',
        onDeciderDown: 'open',
      },
      {
        id: id('sw'),
        scope: 'tenant',
        algorithm: { kind: 'sliding-window', limit: 50, windowMs: 60_000 },
        mode: 'hard',
        onDeciderDown: 'open',
      },
      {
        id: id('pq'),
        scope: 'tenant',
        algorithm: { kind: 'period-quota', limit: 500, period: MONTH, thresholdsPercent: [] },
        mode: 'hard',
        onDeciderDown: 'open',
      },
      {
        id: id('cc'),
        scope: 'tenant',
        algorithm: { kind: 'concurrency', slots: 5, leaseTtlMs: 30_000 },
        mode: 'hard',
        onDeciderDown: 'open',
      },
    ];
    // admitted requests, a settle with an overrun and one with a refund
    const first = input(tenant, limits, 3);
    const second = input(tenant, limits, 4);
    const decided = [await decider.decide(first), await decider.decide(second)];
    expect(decided.map((decision) => decision.kind)).toEqual(['allowed', 'allowed']);
    await decider.settle({ ...first, actual: 9, decidedAtMs: decided[0]?.nowMs ?? 0 });
    await decider.settle({ ...second, actual: 1, decidedAtMs: decided[1]?.nowMs ?? 0 });
    const compiled = compileRequest(first, { shardCount: SHARDS, localNowMs: Date.now() });
    const shardTag = `{s:${compiled.shard}}`;
    const keys = (await redis.keys(`${shardTag}:t:${tenant}:*`)).sort();
    // tb, fw, sw, pq (current period), admitted counter, two request records; the settles
    // released both leases, and an empty lease set is no key at all
    expect(keys).toHaveLength(7);
    expect(keys.some((key) => key.includes(':b:v1:cc'))).toBe(false);
    const periodEnd = compiled.billingEndMs;
    for (const key of keys) {
      const ttl = await redis.pttl(key);
      expect(ttl, key).toBeGreaterThan(0);
      if (key.includes(':a:v1:')) expect(Date.now() + ttl, key).toBeGreaterThan(periodEnd + 399 * 86_400_000);
      if (key.includes(':b:v1:pq:')) expect(Date.now() + ttl, key).toBeGreaterThan(periodEnd + 39 * 86_400_000);
    }
  });
});

describe('threshold crossings in the usage event', () => {
  it('names each crossing (limit:percent) in the event of the request that crossed it, never for shadow limits', async () => {
    const tenant = uniqueTenant('warn');
    const shadow: LimitSpec = { ...quota(100, 'shadow', [50]), id: parseLimitId('shadowed') };
    const limits = [quota(100, 'hard', [50, 80]), shadow];
    const warnOf = async (decision: Awaited<ReturnType<RedisDecider['decide']>>): Promise<string | undefined> => {
      if (decision.kind !== 'allowed' && decision.kind !== 'warned') throw new Error(decision.kind);
      const compiled = compileRequest(input(tenant, limits, 1), { shardCount: SHARDS, localNowMs: decision.nowMs });
      const [entry] = streamEvents(await redis.xrange(usageStreamKey(compiled.shard), decision.streamId, decision.streamId));
      const fields = entry?.[1] ?? [];
      const at = fields.indexOf('warn');
      return at === -1 ? undefined : fields[at + 1];
    };
    const costs = [30, 30, 30];
    const warns: (string | undefined)[] = [];
    for (const cost of costs) warns.push(await warnOf(await decider.decide(input(tenant, limits, cost))));
    expect(warns).toEqual([undefined, 'month:50', 'month:80']);
  });
});
