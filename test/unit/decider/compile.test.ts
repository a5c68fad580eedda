import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileRequest } from '../../../src/decider/compile.js';
import { DECIDE_LAYOUT_VERSION, compileBatch } from '../../../src/decider/decide-args.js';
import { unpackMsgpack } from '../../../src/decider/msgpack.js';
import { admittedKey, bucketKey, parseIpHex, requestRecordKey, shardOf, usageStreamKey } from '../../../src/decider/keys.js';
import { ALG, MODE } from '../../../src/decider/model/limits.js';
import { namingSkewMs, periodPairAt } from '../../../src/decider/model/period.js';
import type { DecideInput, LimitSpec } from '../../../src/decider/ports.js';
import { parseEventId, parseKeyId, parseLimitId, parseTenantId } from '../../../src/shared/index.js';

const MONTH = { unit: 'month', anchorDay: 1, timeZone: 'UTC' } as const;
const DAY_PARIS = { unit: 'day', anchorDay: 1, timeZone: 'Europe/Paris' } as const;

function plan(): LimitSpec[] {
  return [
    {
      id: parseLimitId('burst'),
      scope: 'apiKey',
      algorithm: { kind: 'token-bucket', capacity: 100, refillAmount: 10, refillPeriodMs: 1_000 },
      mode: 'hard',
      onDeciderDown: 'open',
    },
    {
      id: parseLimitId('per-ip'),
      scope: 'ip',
      algorithm: { kind: 'fixed-window', limit: 50, windowMs: 60_000 },
      mode: 'defer',
      onDeciderDown: 'closed',
    },
    {
      id: parseLimitId('day'),
      scope: 'tenant',
      algorithm: { kind: 'period-quota', limit: 1_000, period: DAY_PARIS, thresholdsPercent: [80, 100] },
      mode: 'soft',
      onDeciderDown: 'local',
    },
    {
      id: parseLimitId('inflight'),
      scope: 'tenant',
      algorithm: { kind: 'concurrency', slots: 4, leaseTtlMs: 30_000 },
      mode: 'shadow',
      onDeciderDown: 'open',
    },
  ];
}

const idArb = fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,20}$/);
const ipArb = fc.oneof(
  fc.ipV4(),
  fc.ipV6().filter((ip) => !ip.includes('.')),
);

/** A request for `limits` from tenant `tenant`, API key `key` and address `ip`. */
function input(
  { limits, tenant, key, ip }: { limits: LimitSpec[]; tenant: string; key: string; ip: string },
  overrides: Partial<DecideInput> = {},
): DecideInput {
  return {
    tenant: parseTenantId(tenant),
    keyId: parseKeyId(key),
    requestId: parseEventId('req-1'),
    operation: 'listProducts',
    cost: 7,
    limits,
    billingPeriod: MONTH,
    policyVersion: 3,
    clientIp: ip,
    ...overrides,
  };
}

describe('compileRequest', () => {
  it('builds exactly the keys of the key builder, for every scope and period', () => {
    const limits = plan();
    fc.assert(
      fc.property(idArb, idArb, ipArb, fc.integer({ min: 1_600_000_000_000, max: 2_000_000_000_000 }), (tenantRaw, keyRaw, ip, nowMs) => {
        const compiled = compileRequest(input({ limits, tenant: tenantRaw, key: keyRaw, ip }), { shardCount: 256, localNowMs: nowMs });
        const tenant = parseTenantId(tenantRaw);
        const shard = shardOf(tenant, 256);
        const naming = nowMs - 60_000;
        const billing = periodPairAt(MONTH, naming);
        const day = periodPairAt(DAY_PARIS, naming);
        expect(compiled.keys).toEqual([
          usageStreamKey(shard),
          requestRecordKey(shard, tenant, parseEventId('req-1')),
          admittedKey(shard, tenant, billing.current.startMs),
          admittedKey(shard, tenant, billing.next.startMs),
          bucketKey({ shard, tenant, limitId: parseLimitId('burst'), subject: { scope: 'apiKey', keyId: parseKeyId(keyRaw) } }),
          bucketKey({ shard, tenant, limitId: parseLimitId('per-ip'), subject: { scope: 'ip', ipHex: parseIpHex(ip) } }),
          bucketKey({ shard, tenant, limitId: parseLimitId('day'), periodStartMs: day.current.startMs }),
          bucketKey({ shard, tenant, limitId: parseLimitId('day'), periodStartMs: day.next.startMs }),
          bucketKey({ shard, tenant, limitId: parseLimitId('inflight') }),
        ]);
        expect(compiled.model.limits.map((limit) => limit.key)).toEqual([
          compiled.keys[4],
          compiled.keys[5],
          compiled.keys[6],
          compiled.keys[8],
        ]);
        expect(compiled.model.limits[2]).toMatchObject({
          alg: ALG.periodQuota,
          p1: 1_000,
          p2: day.current.startMs,
          p3: day.current.endMs,
          p4: day.next.endMs,
          thresholds: [80, 100],
        });
      }),
    );
  });

  it('sends a defer limit as hard unless the operation is deferrable', () => {
    const limits = plan();
    const now = Date.UTC(2026, 10, 23, 12);
    const plain = compileRequest(input({ limits, tenant: 'acme', key: 'k1', ip: '10.0.0.1' }), { shardCount: 16, localNowMs: now });
    const deferrable = compileRequest(input({ limits, tenant: 'acme', key: 'k1', ip: '10.0.0.1' }, { isDeferrable: true }), {
      shardCount: 16,
      localNowMs: now,
    });
    expect(plain.definitions[1]?.[1]).toBe(String(MODE.hard));
    expect(plain.model.limits[1]?.mode).toBe(MODE.hard);
    expect(deferrable.definitions[1]?.[1]).toBe(String(MODE.defer));
    expect(deferrable.model.limits[1]?.mode).toBe(MODE.defer);
    expect(plain.signatures[1]).not.toBe(deferrable.signatures[1]);
    // the public mode stays what the plan says
    expect(plain.modes[1]).toBe('defer');
  });

  it('compiles each plan array on its own: a different array with different values is never confused with a cached one', () => {
    const a = plan();
    const b = plan();
    const algorithm = b[0]?.algorithm;
    if (algorithm?.kind !== 'token-bucket') throw new Error('fixture');
    algorithm.capacity = 555;
    const now = Date.UTC(2026, 10, 23, 12);
    compileRequest(input({ limits: a, tenant: 'acme', key: 'k1', ip: '10.0.0.1' }), { shardCount: 16, localNowMs: now });
    const compiled = compileRequest(input({ limits: b, tenant: 'acme', key: 'k1', ip: '10.0.0.1' }), { shardCount: 16, localNowMs: now });
    expect(compiled.definitions[0]?.[2]).toBe('555');
  });

  it('rejects a request whose ip-scoped limit has no address, naming the limit', () => {
    const { clientIp: _address, ...withoutAddress } = input({ limits: plan(), tenant: 'acme', key: 'k1', ip: '10.0.0.1' });
    expect(() => compileRequest(withoutAddress, { shardCount: 16, localNowMs: Date.now() })).toThrow(/per-ip is ip-scoped/);
  });
});

describe('compileBatch', () => {
  it('sends each distinct definition once and refers to it by index', () => {
    const limits = plan();
    const now = Date.UTC(2026, 10, 23, 12);
    const requests = ['t1', 't2', 't3'].map((tenant, index) =>
      compileRequest(
        input(
          { limits, tenant, key: 'k1', ip: '10.0.0.1' },
          { requestId: parseEventId(`r${index}`), isDeferrable: index === 2, ...(index === 1 ? { recordTtlMs: 86_400_000 } : {}) },
        ),
        { shardCount: 16, localNowMs: now },
      ),
    );
    const { keys, args: packed } = compileBatch(requests, 60_000, ['a.1', 'a.2', 'a.3']);
    expect(keys).toEqual(requests.flatMap((request) => request.keys));
    // one argument: the batch as one msgpack array
    expect(packed).toHaveLength(1);
    const args = unpackMsgpack(packed[0]) as (string | number)[];
    expect(args.slice(0, 2)).toEqual([DECIDE_LAYOUT_VERSION, 3]);
    // 4 limits, one of them (defer) compiled two ways: 5 distinct definitions
    expect(args[2]).toBe(5);
    let position = 3;
    const definitions: (string | number)[][] = [];
    for (let index = 0; index < 5; index += 1) {
      const thresholds = Number(args[position + 6]);
      const count = 7 + thresholds + (thresholds > 0 ? 1 : 0);
      definitions.push(args.slice(position, position + count));
      position += count;
    }
    requests.forEach((request, at) => {
      expect(args.slice(position, position + 9)).toEqual(request.head);
      // the batch default record TTL, or the request's own, then the request's attempt token
      expect(args[position + 9]).toBe(request.recordTtlMs ?? 60_000);
      expect(args[position + 10]).toBe(`a.${at + 1}`);
      expect(args[position + 11]).toBe(4);
      const indexes = args.slice(position + 12, position + 16).map(Number);
      expect(indexes.map((index) => definitions[index - 1])).toEqual(request.definitions);
      position += 16;
    });
    expect(position).toBe(args.length);
  });
});

describe('short (second) periods', () => {
  it('are named at most half a period back, so the named pair contains now', () => {
    const spec = { unit: 'second', lengthSeconds: 4, anchorDay: 1, timeZone: 'UTC' } as const;
    expect(namingSkewMs(spec)).toBe(2_000);
    expect(namingSkewMs({ ...spec, lengthSeconds: 3_600 })).toBe(60_000);
    expect(namingSkewMs(MONTH)).toBe(60_000);
    fc.assert(
      fc.property(fc.integer({ min: 1_700_000_000_000, max: 1_900_000_000_000 }), (nowMs) => {
        const limits: LimitSpec[] = [
          {
            id: parseLimitId('q'),
            scope: 'tenant',
            algorithm: { kind: 'period-quota', limit: 10, period: spec, thresholdsPercent: [] },
            mode: 'hard',
            onDeciderDown: 'open',
          },
        ];
        const compiled = compileRequest(input({ limits, tenant: 'acme', key: 'k1', ip: '10.0.0.1' }, { billingPeriod: spec }), {
          shardCount: 16,
          localNowMs: nowMs,
        });
        expect(compiled.billingStartMs <= nowMs && nowMs < compiled.billingNextEndMs).toBe(true);
      }),
    );
  });
});
