import { describe, expect, it } from 'vitest';
import { meterPumpGroups, meterPumpId, shardsOfMeterId } from '../../../src/workflows/ids.js';

describe('pump workflow ids and groups', () => {
  it('cuts the shards into aligned blocks, and each block where its shards stop being consecutive', () => {
    expect(meterPumpGroups([0, 1, 2, 3, 4, 5, 6, 7], 4)).toEqual([
      [0, 1, 2, 3],
      [4, 5, 6, 7],
    ]);
    // a caller's range that starts inside a block: the block boundary still cuts it (2|3 is not one of them, 3|4 is)
    expect(meterPumpGroups([2, 3, 4, 5, 6], 4)).toEqual([
      [2, 3],
      [4, 5, 6],
    ]);
    // a gap inside a block cuts it too; duplicates and order do not matter
    expect(meterPumpGroups([9, 0, 1, 3, 1], 4)).toEqual([[0, 1], [3], [9]]);
    expect(meterPumpGroups([5, 6], 1)).toEqual([[5], [6]]);
    expect(
      meterPumpGroups(
        Array.from({ length: 1_024 }, (_, shard) => shard),
        16,
      ),
    ).toHaveLength(64);
  });

  it('names a pump by its first and last shard, and reads the shards back from either id form', () => {
    expect(meterPumpId(16, 31)).toBe('meter/16-31');
    expect(meterPumpId(7)).toBe('meter/7-7');
    expect(shardsOfMeterId('meter/16-31')).toEqual({ first: 16, last: 31 });
    expect(shardsOfMeterId('meter/7')).toEqual({ first: 7, last: 7 });
    for (const other of ['audit/all', 'meter/3-2', 'meter/', 'meter/1-99999', 'meter/a-b', 'xmeter/1'])
      expect(shardsOfMeterId(other)).toBeUndefined();
  });

  it('refuses shards outside [0, 16384), a last before the first, and a group size below 1', () => {
    expect(() => meterPumpId(16_384)).toThrow(/\[0, 16384\)/);
    expect(() => meterPumpId(5, 4)).toThrow(/last shard comes after its first/);
    expect(() => meterPumpGroups([1], 0)).toThrow(/positive integer/);
    expect(() => meterPumpGroups([-1], 4)).toThrow(/\[0, 16384\)/);
  });
});
