import fc from 'fast-check';
import { Command } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { compileRequest, type CompiledRequest } from '../../../src/decider/compile.js';
import { compileBatch } from '../../../src/decider/decide-args.js';
import { DECIDE_SCRIPT, encodeDecideCall, evalWire, scriptSource } from '../../../src/decider/decide-command.js';
import { readScript } from '../../../src/decider/scripts.js';
import type { DecideInput, LimitSpec } from '../../../src/decider/ports.js';
import { parseEventId, parseKeyId, parseLimitId, parseTenantId, type EventId, type TenantId } from '../../../src/shared/index.js';

const MONTH = { unit: 'month', anchorDay: 1, timeZone: 'UTC' } as const;
const LIMITS: LimitSpec[] = [
  {
    id: parseLimitId('burst'),
    scope: 'apiKey',
    algorithm: { kind: 'token-bucket', capacity: 100, refillAmount: 10, refillPeriodMs: 1_000 },
    mode: 'hard',
    onDeciderDown: 'open',
  },
  {
    id: parseLimitId('month'),
    scope: 'tenant',
    algorithm: { kind: 'period-quota', limit: 1_000, period: MONTH, thresholdsPercent: [80] },
    mode: 'soft',
    onDeciderDown: 'open',
  },
];
const NOW = Date.UTC(2026, 11, 6, 10);

function request(tenant: TenantId, requestId: string, options: { recordTtlMs?: number } = {}): CompiledRequest {
  const input: DecideInput = {
    tenant,
    keyId: parseKeyId('k1'),
    requestId: /^[\x20-\x7e]*$/.test(requestId) ? parseEventId(requestId) : (requestId as EventId),
    operation: 'listProducts',
    cost: 3,
    limits: LIMITS,
    billingPeriod: MONTH,
    policyVersion: 7,
    ...options,
  };
  return compileRequest(input, { shardCount: 1, localNowMs: NOW });
}

/** What ioredis itself writes for `EVALSHA`/`EVAL` of the same keys and packed batch (the form `defineCommand` sent). */
function ioredisWire(name: 'evalsha' | 'eval', requests: CompiledRequest[], attempts: string[]): Buffer {
  const { keys, args } = compileBatch(requests, 60_000, attempts);
  const script = name === 'evalsha' ? DECIDE_SCRIPT.sha : readScript('decide.lua');
  const written = new Command(name, [script, keys.length, ...keys, ...args]).toWritable({});
  return Buffer.isBuffer(written) ? written : Buffer.from(written, 'utf8');
}

describe('encodeDecideCall', () => {
  it('writes, byte for byte, the EVALSHA and the EVAL ioredis writes for the same batch', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,63}$/), fc.boolean()), { minLength: 1, maxLength: 70 }),
        (members) => {
          const requests = members.map(([tenant, hasOwnTtl], index) =>
            request(parseTenantId(tenant), `r${index}.${tenant}`, hasOwnTtl ? { recordTtlMs: 86_400_000 } : {}),
          );
          const attempts = requests.map((_, index) => `a.${index.toString(36)}`);
          const call = encodeDecideCall({ requests, defaultRecordTtlMs: 60_000, attempts });
          expect(call.wire.equals(ioredisWire('evalsha', requests, attempts))).toBe(true);
          expect(evalWire(call).equals(ioredisWire('eval', requests, attempts))).toBe(true);
          expect(call.slotKey).toBe(requests[0]?.keys[0]);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('counts bytes, not characters, for a key with a multi-byte character', () => {
    // tenant ids are ASCII (parseTenantId); an unchecked one must still be framed exactly
    // in a key's first half (the tenant's prefix) or in its second (the record key's request id)
    const requests = [request('t-é' as TenantId, 'r1'), request('t-日本' as TenantId, 'r2'), request(parseTenantId('t3'), 'r3-ü')];
    const call = encodeDecideCall({ requests, defaultRecordTtlMs: 60_000, attempts: ['a', 'b', 'c'] });
    expect(call.wire.equals(ioredisWire('evalsha', requests, ['a', 'b', 'c']))).toBe(true);
    expect(call.wire.includes(Buffer.from('$21\r\n{s:0}:t:t3:r:v1:r3-ü\r\n', 'utf8'))).toBe(true);
    expect(call.wire.includes(Buffer.from('{s:0}:t:t-日本:r:v1:r2', 'utf8'))).toBe(true);
  });

  it('grows past its first buffer, and a call keeps its bytes when the next call reuses the writer', () => {
    const long = (index: number): TenantId => parseTenantId(`${index}-${'x'.repeat(60)}`);
    const big = Array.from({ length: 400 }, (_, index) => request(long(index), `r${index}-${'y'.repeat(100)}`));
    const attempts = big.map((_, index) => `attempt.${index}`);
    const first = encodeDecideCall({ requests: big, defaultRecordTtlMs: 60_000, attempts });
    expect(first.wire.length).toBeGreaterThan(128 * 1024);
    const expected = ioredisWire('evalsha', big, attempts);
    expect(first.wire.equals(expected)).toBe(true);
    const small = encodeDecideCall({ requests: [request(parseTenantId('t1'), 'r1')], defaultRecordTtlMs: 60_000, attempts: ['a'] });
    expect(small.wire.equals(ioredisWire('evalsha', [request(parseTenantId('t1'), 'r1')], ['a']))).toBe(true);
    expect(first.wire.equals(expected)).toBe(true);
  });

  it('names the script by the SHA1 Redis computes, and refuses an empty batch', () => {
    expect(scriptSource('return 1').sha).toBe('e0e1f9fabfc9d4800c877a703b823ac0578ff8db');
    expect(() => encodeDecideCall({ requests: [], defaultRecordTtlMs: 60_000 })).toThrow(/at least one request/);
  });
});
