/**
 * The test allocator (test/support/allocate.ts): no two ranges it hands out
 * overlap, whatever the start and the sizes asked, and calls from several
 * processes at once share one sequence.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  allocateShardsFrom,
  initAllocations,
  takeShards,
  type AllocationPools,
  type AllocationState,
  type ShardRange,
} from '../../support/allocate.js';

const run = promisify(execFile);
const root = mkdtempSync(join(tmpdir(), 'tollgate-allocate-'));

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

function overlaps(a: ShardRange, b: ShardRange): boolean {
  return a.first < b.end && b.first < a.end;
}

describe('takeShards', () => {
  it('hands out ranges inside the pool that never overlap, and refuses what the pool cannot hold', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2_000 }).chain((size) => fc.tuple(fc.constant(size), fc.integer({ min: 0, max: size - 1 }))),
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 30 }),
        ([size, offset], counts) => {
          // given a pool [100, 100 + size) whose ring starts at any shard in it
          const pool = { first: 100, end: 100 + size };
          let state: AllocationState = { nextShard: pool.first + offset, usedShards: 0, nextDb: 0 };
          const ranges: ShardRange[] = [];
          // when ranges of the drawn sizes are taken until one does not fit
          for (const count of counts) {
            let taken: ReturnType<typeof takeShards>;
            try {
              taken = takeShards(state, pool, count);
            } catch (error) {
              // then a refusal only comes when the shards left cannot hold it (less a skipped tail, shorter than a range asked)
              expect((error as Error).message).toContain('cannot hold');
              const taken = ranges.reduce((sum, range) => sum + range.count, 0);
              const longest = Math.max(count, ...ranges.map((range) => range.count));
              expect(taken + count).toBeGreaterThan(size - (longest - 1));
              break;
            }
            state = taken.state;
            ranges.push(taken.result);
          }
          // then every range is in the pool, of the size asked, and disjoint from every other
          for (const [index, range] of ranges.entries()) {
            expect(range.first).toBeGreaterThanOrEqual(pool.first);
            expect(range.end).toBeLessThanOrEqual(pool.end);
            expect(range.count).toBe(counts[index]);
            for (const other of ranges.slice(index + 1))
              expect(overlaps(range, other), `${range.first}..${range.end} and ${other.first}..${other.end}`).toBe(false);
          }
        },
      ),
    );
  });

  it('skips the tail that cannot hold a range and goes on from the pool start', () => {
    // given a pool [1024, 2048) whose ring starts 10 shards before its end
    const pool = { first: 1_024, end: 2_048 };
    const first = takeShards({ nextShard: 2_038, usedShards: 0, nextDb: 0 }, pool, 8);
    // when the next range does not fit in the 2 shards left
    const second = takeShards(first.state, pool, 4);
    // then it starts at the pool's start, and the skipped shards count as used
    expect([first.result.first, first.result.end]).toEqual([2_038, 2_046]);
    expect([second.result.first, second.result.end]).toEqual([1_024, 1_028]);
    expect(second.state.usedShards).toBe(8 + 2 + 4);
    // and the ring stops before it reaches the first range again
    expect(() => takeShards(second.state, pool, 1_024 - 14 + 1)).toThrow('cannot hold 1011 more shards (14 used)');
    expect(takeShards(second.state, pool, 1_024 - 14).result.end).toBe(2_038);
  });

  it('refuses an empty range', () => {
    expect(() => takeShards({ nextShard: 0, usedShards: 0, nextDb: 0 }, { first: 0, end: 10 }, 0)).toThrow('at least one shard');
  });
});

describe('allocateShardsFrom', () => {
  it('gives calls from four processes at once disjoint ranges that together fill the pool from its start', async () => {
    // given a fresh allocator over [1024, 1024 + 4 × 25 × 3)
    const pools: AllocationPools = { dir: join(root, 'concurrent'), shards: { first: 1_024, end: 1_024 + 4 * 25 * 3 }, redisDbs: [] };
    initAllocations(pools, pools.shards.first);
    // when four processes each take 25 ranges of 3 shards as fast as they can
    const script = `
      import { allocateShardsFrom } from ${JSON.stringify(join(process.cwd(), 'test/support/allocate.ts'))};
      const pools = JSON.parse(process.argv[1]);
      const firsts = [];
      for (let i = 0; i < 25; i += 1) firsts.push(allocateShardsFrom(pools, 3).first);
      console.log(JSON.stringify(firsts));`;
    const outputs = await Promise.all(
      [0, 1, 2, 3].map(() =>
        run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, JSON.stringify(pools)], { cwd: process.cwd() }),
      ),
    );
    // then the 100 ranges are disjoint and tile the pool exactly
    const firsts = outputs.flatMap(({ stdout }) => JSON.parse(stdout) as number[]).sort((a, b) => a - b);
    expect(firsts).toEqual(Array.from({ length: 100 }, (_, index) => 1_024 + index * 3));
    // and the pool is then spent
    expect(() => allocateShardsFrom(pools, 1)).toThrow('cannot hold 1 more shards (300 used)');
  });
});
