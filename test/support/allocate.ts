/**
 * Shards and Redis databases for test files, handed out by one allocator so
 * no two files can touch the same usage stream or database.
 *
 * The globalSetup creates a state file for the run and provides its path with
 * the pools (`inject('allocations')`). Each call here takes a lock (an
 * exclusive `mkdir`), reads the state, advances it past what it hands out and
 * writes it back, so calls from every worker process see one sequence and a
 * range is never handed out twice. A file calls these once, at load.
 *
 * Shards below `shards.first` are left to files that use a small shard count
 * (16, or the production default 256) on the shared database 0 and never pump
 * a whole shard. The pool serves the single Redis and the Redis Cluster alike.
 */
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';
import { shardOf } from '../../src/decider/index.js';
import { parseTenantId, type TenantId } from '../../src/shared/index.js';
import { testStack, uniqueTenant } from './stack.js';

/** What the globalSetup provides: where the state lives and what it may hand out. */
export interface AllocationPools {
  /** Directory holding `state.json` and, while one call holds it, the `lock` directory. */
  dir: string;
  /** Shards `[first, end)` to hand out (16384 logical shards in all). */
  shards: { first: number; end: number };
  /** Redis databases to hand out, in order; never the shared one of `redisUrl`. */
  redisDbs: number[];
}

/** The allocator's state, shared by every worker through `state.json`. */
export interface AllocationState {
  /** Next shard to hand out. */
  nextShard: number;
  /** Shards handed out or skipped so far (at most the pool's size). */
  usedShards: number;
  /** Index in `redisDbs` of the next database. */
  nextDb: number;
}

declare module 'vitest' {
  export interface ProvidedContext {
    allocations: AllocationPools;
  }
}

/** A run of consecutive shards that belongs to one test file. */
export interface ShardRange {
  readonly first: number;
  /** One past the last shard. */
  readonly end: number;
  readonly count: number;
  /** Whether `shard` is in the range. */
  has(shard: number): boolean;
  /** The `index`-th shard of the range. @throws when `index` is outside it */
  at(index: number): number;
}

const STATE_FILE = 'state.json';
/** Logical shards in all (tenants are hashed over all of them where a file uses its range). */
export const LOGICAL_SHARDS = 16_384;
const LOCK_WAIT_MS = 10_000;

/** Writes the first state of a run's allocator (called by the globalSetup). */
export function initAllocations(pools: AllocationPools, startShard: number): void {
  if (startShard < pools.shards.first || startShard >= pools.shards.end) throw new Error(`start shard ${startShard} is outside the pool`);
  mkdirSync(pools.dir, { recursive: true });
  const state: AllocationState = { nextShard: startShard, usedShards: 0, nextDb: 0 };
  writeFileSync(join(pools.dir, STATE_FILE), JSON.stringify(state));
}

function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Runs `change` on the state under the lock and writes back what it returns. */
function withState<T>(pools: AllocationPools, change: (state: AllocationState) => { state: AllocationState; result: T }): T {
  const lock = join(pools.dir, 'lock');
  for (const deadline = Date.now() + LOCK_WAIT_MS; ;) {
    try {
      mkdirSync(lock);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (Date.now() > deadline)
        throw new Error(`the test allocator's lock ${lock} is still held after ${LOCK_WAIT_MS} ms`, { cause: error });
      pause(5);
    }
  }
  try {
    const file = join(pools.dir, STATE_FILE);
    const { state, result } = change(JSON.parse(readFileSync(file, 'utf8')) as AllocationState);
    writeFileSync(file, JSON.stringify(state));
    return result;
  } finally {
    rmdirSync(lock);
  }
}

/**
 * Takes the next `count` consecutive shards of the pool, starting where the
 * last call stopped. The pool is used as a ring that starts at a random shard
 * per run (fresh streams on an attached Redis that outlives runs); a range
 * never wraps: when it does not fit before the pool's end, the tail is skipped.
 * @throws when the pool cannot hold the range
 */
export function takeShards(
  state: AllocationState,
  pool: { first: number; end: number },
  count: number,
): { state: AllocationState; result: ShardRange } {
  if (!Number.isInteger(count) || count < 1) throw new Error(`a shard range holds at least one shard, got ${count}`);
  let { nextShard, usedShards } = state;
  if (nextShard + count > pool.end) {
    usedShards += pool.end - nextShard;
    nextShard = pool.first;
  }
  if (usedShards + count > pool.end - pool.first) {
    throw new Error(`the test shard pool [${pool.first}, ${pool.end}) cannot hold ${count} more shards (${usedShards} used)`);
  }
  const range = shardRange(nextShard, count);
  return { state: { ...state, nextShard: nextShard + count, usedShards: usedShards + count }, result: range };
}

function shardRange(first: number, count: number): ShardRange {
  return {
    first,
    end: first + count,
    count,
    has: (shard) => shard >= first && shard < first + count,
    at: (index) => {
      if (!Number.isInteger(index) || index < 0 || index >= count) throw new Error(`shard index ${index} is outside a range of ${count}`);
      return first + index;
    },
  };
}

/** `count` consecutive shards no other test file gets. */
export function allocateShards(count: number): ShardRange {
  return allocateShardsFrom(inject('allocations'), count);
}

/** `allocateShards` on explicit pools (the allocator's own test). */
export function allocateShardsFrom(pools: AllocationPools, count: number): ShardRange {
  return withState(pools, (state) => takeShards(state, pools.shards, count));
}

/**
 * A Redis database of the test Redis that no other test file gets, for a file
 * that works on every shard of a small shard count (a worker, the metrics).
 * @returns its number and the test Redis URL pointing at it
 */
export function allocateRedisDb(): { db: number; url: string } {
  const pools = inject('allocations');
  const db = withState(pools, (state) => {
    const next = pools.redisDbs[state.nextDb];
    if (next === undefined) throw new Error(`the test Redis has no database left to hand out (${pools.redisDbs.length} in all)`);
    return { state: { ...state, nextDb: state.nextDb + 1 }, result: next };
  });
  return { db, url: `${testStack().redisUrl.replace(/\/\d+$/, '')}/${db}` };
}

/**
 * A fresh tenant whose shard (of the 16384 logical shards) is in `range`, and
 * with it the next `parts - 1` shards (a whale split over `parts` sub-shards).
 */
export function tenantInShards(range: ShardRange, prefix: string, parts = 1): TenantId {
  if (parts > range.count) throw new Error(`a range of ${range.count} shards cannot hold ${parts} parts`);
  for (;;) {
    const tenant = parseTenantId(uniqueTenant(prefix));
    const shard = shardOf(tenant, LOGICAL_SHARDS);
    if (range.has(shard) && range.has(shard + parts - 1)) return tenant;
  }
}
