import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  KEY_PATTERN,
  admittedKey,
  admittedKeyPattern,
  parseAdmittedKey,
  requestRecordKey,
  bucketKey,
  eventMarkerKey,
  fnv1a32,
  shardOf,
  usageStreamKey,
  deadLetterStreamKey,
  type ShardId,
} from '../../../src/decider/keys.js';
import { parseEventId, parseLimitId, parseTenantId } from '../../../src/shared/index.js';

const idArb = fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,63}$/);

describe('fnv1a32', () => {
  it('matches the published FNV-1a 32-bit test vectors', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
  });

  it('hashes the UTF-8 bytes whether or not the text is ASCII (ASCII takes a fast path)', () => {
    // reference: the byte-wise definition, written out here
    const reference = (text: string): number => {
      let hash = 0x811c9dc5;
      for (const byte of Buffer.from(text, 'utf8')) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
      return hash >>> 0;
    };
    fc.assert(fc.property(fc.string({ unit: 'grapheme' }), (text) => fnv1a32(text) === reference(text)));
    fc.assert(fc.property(fc.string({ unit: 'grapheme-ascii' }), (text) => fnv1a32(text) === reference(text)));
    expect(fnv1a32('é')).toBe(reference('é'));
  });
});

describe('shardOf', () => {
  it('is stable and within [0, shardCount)', () => {
    fc.assert(
      fc.property(idArb, fc.integer({ min: 1, max: 16_384 }), (raw, count) => {
        const shard = shardOf(parseTenantId(raw), count);
        expect(shard).toBeGreaterThanOrEqual(0);
        expect(shard).toBeLessThan(count);
        expect(shardOf(parseTenantId(raw), count)).toBe(shard);
      }),
    );
  });

  it('rejects a shard count outside 1..16384', () => {
    for (const count of [0, -1, 1.5, 16_385]) expect(() => shardOf(parseTenantId('a'), count)).toThrow(/shardCount/);
  });
});

describe('key builders', () => {
  it('build the DESIGN §5 layout with the shard hash tag', () => {
    const shard = 17 as ShardId;
    expect(usageStreamKey(shard)).toBe('{s:17}:usage:v1');
    expect(bucketKey({ shard, tenant: parseTenantId('acme'), limitId: parseLimitId('burst') })).toBe('{s:17}:t:acme:b:v1:burst');
    expect(eventMarkerKey(shard, parseEventId('req.1'))).toBe('{s:17}:e:v1:req.1');
    expect(deadLetterStreamKey(shard)).toBe('{s:17}:dead:v1');
    expect(KEY_PATTERN.test(deadLetterStreamKey(shard))).toBe(true);
    expect(bucketKey({ shard, tenant: parseTenantId('acme'), limitId: parseLimitId('burst'), part: 3 })).toBe(
      '{s:17}:t:acme:u:3:b:v1:burst',
    );
    expect(KEY_PATTERN.test(bucketKey({ shard, tenant: parseTenantId('acme'), limitId: parseLimitId('burst'), part: 3 }))).toBe(true);
  });

  it('every key matches KEY_PATTERN and distinct inputs never build the same key', () => {
    fc.assert(
      fc.property(idArb, idArb, idArb, idArb, fc.nat(16_383), (t1, l1, t2, l2, shardNumber) => {
        const shard = shardNumber as ShardId;
        const a = bucketKey({ shard, tenant: parseTenantId(t1), limitId: parseLimitId(l1) });
        const b = bucketKey({ shard, tenant: parseTenantId(t2), limitId: parseLimitId(l2) });
        expect(a).toMatch(KEY_PATTERN);
        expect(a === b).toBe(t1 === t2 && l1 === l2);
      }),
    );
  });
});

describe('admitted counter keys', () => {
  it('parse back to the shard, tenant, period and part they were built from; no other key parses', () => {
    fc.assert(
      fc.property(
        idArb,
        fc.integer({ min: 0, max: 16_383 }),
        fc.integer({ min: 0, max: 2 ** 45 }),
        fc.option(fc.integer({ min: 0, max: 63 }), { nil: undefined }),
        (tenant, shard, periodStartMs, part) => {
          const key = admittedKey(shard as ShardId, parseTenantId(tenant), periodStartMs, part);
          expect(parseAdmittedKey(key)).toEqual({ shard, tenant, periodStartMs, part });
          expect(parseAdmittedKey(requestRecordKey(shard as ShardId, parseTenantId(tenant), parseEventId('r1'), part))).toBeUndefined();
          expect(parseAdmittedKey(usageStreamKey(shard as ShardId))).toBeUndefined();
        },
      ),
    );
  });

  it("SCAN MATCH patterns: one shard's hash tag, or every shard", () => {
    expect(admittedKeyPattern(17 as ShardId)).toBe('{s:17}:t:*:a:v1:*');
    expect(admittedKeyPattern()).toBe('{s:*}:t:*:a:v1:*');
  });
});
