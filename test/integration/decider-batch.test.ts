/**
 * lua/decide.lua with many requests of one tenant in one call (a hot tenant): the call reads each key
 * once and writes each changed key once, and must decide exactly as the same requests decided one
 * after another (the pure model, applied in order at the call's Redis time), leave the same state,
 * give every key a TTL, append one event per admitted request, and write nothing for a denied one.
 */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  connectDeciderRedis,
  shardOf,
  usageStreamKey,
  type DecideInput,
  type DeciderRedis,
  type LimitSpec,
} from '../../src/decider/index.js';
import { decodeMsgpackIntegers } from '../../src/decider/bucket-state.js';
import { compileRequest, type CompiledRequest } from '../../src/decider/compile.js';
import { compileBatch } from '../../src/decider/decide-args.js';
import { decideModel, emptyModelState, type RawDecision } from '../../src/decider/model/limits.js';
import { decodeDecideBatch } from '../../src/decider/replies.js';
import { parseEventId, parseLimitId, parseTenantId, type EventId } from '../../src/shared/index.js';
import { closeAfterAll } from '../support/teardown.js';
import { testStack, uniqueTenant } from '../support/stack.js';
import { MONTH } from '../support/time.js';
import { streamEvents } from '../support/usage-stream.js';
import { decideRequest } from '../support/decide-input.js';

const SHARDS = 64;
let redis: DeciderRedis;

beforeAll(async () => {
  redis = await connectDeciderRedis({ url: testStack().redisUrl, commandTimeoutMs: 5_000 });
});

closeAfterAll(() => [redis]);

const id = parseLimitId;
/** Limit sets a hot tenant's requests pick from: small limits, so a batch crosses them. */
const LIMIT_SETS: LimitSpec[][] = [
  [
    {
      id: id('tb'),
      scope: 'apiKey',
      algorithm: { kind: 'token-bucket', capacity: 40, refillAmount: 1, refillPeriodMs: 60_000 },
      mode: 'hard',
      onDeciderDown: 'open',
    },
    {
      id: id('sw'),
      scope: 'tenant',
      algorithm: { kind: 'sliding-window', limit: 60, windowMs: 60_000 },
      mode: 'hard',
      onDeciderDown: 'open',
    },
    {
      id: id('pq'),
      scope: 'tenant',
      algorithm: { kind: 'period-quota', limit: 90, period: MONTH, thresholdsPercent: [50, 80, 100] },
      mode: 'soft',
      onDeciderDown: 'open',
    },
  ],
  [
    {
      id: id('fw'),
      scope: 'tenant',
      algorithm: { kind: 'fixed-window', limit: 35, windowMs: 60_000 },
      mode: 'hard',
      onDeciderDown: 'open',
    },
    {
      id: id('pq'),
      scope: 'tenant',
      algorithm: { kind: 'period-quota', limit: 90, period: MONTH, thresholdsPercent: [50, 80, 100] },
      mode: 'soft',
      onDeciderDown: 'open',
    },
  ],
  [
    {
      id: id('tb'),
      scope: 'apiKey',
      algorithm: { kind: 'token-bucket', capacity: 40, refillAmount: 1, refillPeriodMs: 60_000 },
      mode: 'shadow',
      onDeciderDown: 'open',
    },
    {
      id: id('cc'),
      scope: 'apiKey',
      algorithm: { kind: 'concurrency', slots: 4, leaseTtlMs: 60_000 },
      mode: 'hard',
      onDeciderDown: 'open',
    },
  ],
];

function request(tenant: string, set: number, cost: number, requestId: EventId): DecideInput {
  return decideRequest({ tenant, limits: LIMIT_SETS[set] as LimitSpec[], cost, requestId, keyId: 'key-1', operation: 'listProducts' });
}

const comparable = (raw: RawDecision): RawDecision => ({ ...raw, streamId: raw.streamId === '' ? '' : 'set' });

async function tenantEvents(tenant: string): Promise<number> {
  const entries = streamEvents(await redis.xrange(usageStreamKey(shardOf(parseTenantId(tenant), SHARDS)), '-', '+'));
  return entries.filter(([, fields]) => fields[fields.indexOf('tenant') + 1] === tenant).length;
}

/** Decides `requests` in one call; compares each reply and the state left with the model applied in order. */
async function oneCall(tenant: string, requests: DecideInput[]): Promise<void> {
  const compiled = requests.map((one) => compileRequest(one, { shardCount: SHARDS, localNowMs: Date.now() }));
  const attempts = compiled.map((_, index) => `a${index}`);
  const { keys, args } = compileBatch(compiled, 60_000, attempts);
  const raws = decodeDecideBatch(
    await redis.tgDecideBuffer(keys.length, ...keys, ...args),
    compiled.map((one) => one.model.limits.length),
    attempts,
  );
  const state = emptyModelState();
  const nowMs = raws[0]?.nowMs ?? 0;
  const expected = compiled.map((one) => decideModel(state, one.model, nowMs));
  // the model flags every stored record as a replay; the script does so for any other attempt token (each request here has its own)
  expect(raws.map(comparable)).toEqual(expected.map(comparable));
  await expectState(compiled, state);
  expect(await tenantEvents(tenant)).toBe(state.events);
}

/** Every state the model holds is in Redis, equal, with a TTL; nothing else of the tenant's was written. */
async function expectState(compiled: CompiledRequest[], state: ReturnType<typeof emptyModelState>): Promise<void> {
  const ints = async (key: string): Promise<number[]> => decodeMsgpackIntegers((await redis.getBuffer(key)) ?? Buffer.alloc(0));
  for (const [key, value] of state.tb) expect(await ints(key)).toEqual([value.t, value.ts, value.r]);
  for (const [key, value] of state.fw) expect(await ints(key)).toEqual([value.w, value.n]);
  for (const [key, value] of state.sw) expect(await ints(key)).toEqual([value.w, value.c, value.p]);
  for (const [key, value] of state.counters) expect(Number(await redis.get(key))).toBe(value);
  // a take of cost 0 leaves a quota counter unwritten (the model holds it at 0)
  const counted = [...state.counters].filter(([, value]) => value !== 0).map(([key]) => key);
  const written = new Set([...state.tb.keys(), ...state.fw.keys(), ...state.sw.keys(), ...counted, ...state.records.keys()]);
  const allKeys = new Set(compiled.flatMap((one) => one.keys.slice(1)));
  for (const key of allKeys) {
    const ttl = await redis.pttl(key);
    if (written.has(key) || state.leases.has(key)) expect(ttl, key).toBeGreaterThan(0);
    // the admitted counter is not in the model: it exists (with a TTL) only when something was admitted
    else if (!key.includes(':a:v1:') && !state.counters.has(key)) expect(ttl, key).toBe(-2);
    else expect(ttl === -2 || ttl > 0, key).toBe(true);
  }
}

describe('a hot tenant: many of its requests in one decide.lua call', () => {
  it('decides exactly as the same requests one after another, and leaves the same state', async () => {
    const seed = Number(process.env['TOLLGATE_PROP_SEED'] ?? Date.now() % 2 ** 31);
    console.log(`batch differential seed: ${seed}`);
    const member = fc.record({ set: fc.nat(LIMIT_SETS.length - 1), cost: fc.integer({ min: 0, max: 12 }), twin: fc.nat(9) });
    await fc.assert(
      fc.asyncProperty(fc.array(member, { minLength: 2, maxLength: 64 }), async (members) => {
        const tenant = uniqueTenant('hb');
        const ids: EventId[] = [];
        const requests = members.map(({ set, cost, twin }) => {
          // one request in ten repeats an earlier id of the batch (a client's concurrent retry)
          const requestId = twin === 0 && ids.length > 0 ? (ids.at(-1) as EventId) : parseEventId(`r-${randomBytes(6).toString('hex')}`);
          ids.push(requestId);
          return request(tenant, set, cost, requestId);
        });
        await oneCall(tenant, requests);
      }),
      { numRuns: Number(process.env['TOLLGATE_PROP_RUNS'] ?? 30), seed },
    );
  }, 300_000);

  it('admits exactly floor(limit / cost) of 64 requests in one call, and the 65th call writes nothing', async () => {
    const tenant = uniqueTenant('hb');
    const make = (): DecideInput => request(tenant, 1, 3, parseEventId(`r-${randomBytes(6).toString('hex')}`));
    await oneCall(tenant, Array.from({ length: 64 }, make));
    // fixed window 35 / 3 = 11 admitted; the quota (soft) warns
    expect(await tenantEvents(tenant)).toBe(11);
    const compiled = compileRequest(make(), { shardCount: SHARDS, localNowMs: Date.now() });
    const dump = async (): Promise<(string | null)[]> =>
      Promise.all(compiled.keys.slice(1).map(async (key) => (await redis.dumpBuffer(key))?.toString('hex') ?? null));
    const before = await dump();
    const { keys, args } = compileBatch([compiled, compiled], 60_000, ['x', 'y']);
    const [denied] = decodeDecideBatch(await redis.tgDecideBuffer(keys.length, ...keys, ...args), [2, 2], ['x', 'y']);
    expect(denied?.kind).toBe(3);
    expect(await dump()).toEqual(before);
    expect(await tenantEvents(tenant)).toBe(11);
  });

  it('refuses a batch that is not one packed argument, naming it, and writes nothing', async () => {
    const tenant = uniqueTenant('hb');
    const compiled = compileRequest(request(tenant, 0, 1, parseEventId(`r-${randomBytes(6).toString('hex')}`)), {
      shardCount: SHARDS,
      localNowMs: Date.now(),
    });
    const { keys, args } = compileBatch([compiled], 60_000);
    for (const bad of [[...args, 'extra'], ['not msgpack \xc1'], [args[0].subarray(0, args[0].length - 3)]]) {
      const error = await redis.tgDecide(keys.length, ...keys, ...bad).catch((reason: unknown) => reason);
      expect(String(error)).toMatch(/ERR_ARG (packed|\w+) at \d+/);
    }
    expect(await redis.exists(...keys.slice(1))).toBe(0);
    expect(await tenantEvents(tenant)).toBe(0);
  });
});
