import { describe, expect, it } from 'vitest';
import { usageStreamKey } from '../../../src/decider/index.js';
import { deadLetterStreamKey, parseShard } from '../../../src/metering/index.js';

const hashTag = (key: string): string | undefined => /^[^{]*\{([^}]+)\}/.exec(key)?.[1];

describe('deadLetterStreamKey', () => {
  it('shares the usage stream hash tag of the same shard (one slot), and differs between shards', () => {
    for (const shard of [0, 1, 17, 255, 16_383]) {
      const parsed = parseShard(shard);
      expect(hashTag(deadLetterStreamKey(parsed))).toBe(hashTag(usageStreamKey(parsed)));
      expect(deadLetterStreamKey(parsed)).toBe(`{s:${shard}}:dead:v1`);
    }
    expect(hashTag(deadLetterStreamKey(parseShard(1)))).not.toBe(hashTag(deadLetterStreamKey(parseShard(2))));
  });

  it('refuses a shard outside [0, 16384)', () => {
    expect(() => parseShard(16_384)).toThrow('a shard is an integer in [0, 16384), got 16384');
    expect(() => parseShard(-1)).toThrow();
    expect(() => parseShard(1.5)).toThrow();
  });
});
