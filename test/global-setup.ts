/**
 * Starts the real services once per test run (through infra/), or attaches to
 * the ones the environment names, and hands their endpoints to test files via
 * `inject('stack')`. An unreachable or missing service throws here, which
 * fails the whole run: integration tests never skip. It also sets up the
 * allocator of shards and Redis databases (`inject('allocations')`,
 * test/support/allocate.ts).
 */
import { randomBytes, randomInt } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startLocalRedisCluster, stopProcess, type ManagedProcess } from '../infra/services.js';
import { ensureDashboardBuilt } from '../infra/dashboard-build.js';
import { upStack, type Stack } from '../infra/stack.js';
import { LOGICAL_SHARDS, initAllocations, type AllocationPools } from './support/allocate.js';
import type { TestStack } from './support/stack.js';

/** Shards below this are for files with a small shard count (16, 256) on database 0; the rest are allocated. */
const ALLOCATED_SHARDS_FROM = 1_024;
/** Redis's default number of databases. */
const REDIS_DATABASES = 16;

let stack: Stack | undefined;
let clusterProcesses: ManagedProcess[] = [];
let allocationsDir: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  const log = (line: string): void => console.log(`[global-setup] ${line}`);
  // the dashboard's browser tests serve dist/dashboard: built once here (when stale), not by test files running side by side
  if (ensureDashboardBuilt()) log('dashboard: built into dist/dashboard');
  stack = await upStack({ profile: 'test', onProgress: log });

  let clusterNodes: { host: string; port: number }[];
  const external = process.env['REDIS_CLUSTER_NODES'];
  if (external !== undefined && external !== '') {
    clusterNodes = external.split(',').map((part) => {
      const [host = '', port = ''] = part.trim().split(':');
      return { host, port: Number(port) };
    });
    log(`redis cluster: attached to ${external}`);
  } else {
    const cluster = await startLocalRedisCluster({ dataDir: stack.dataDir, nodes: 3 });
    clusterProcesses = cluster.processes;
    clusterNodes = cluster.nodes;
    log(`redis cluster: 3 masters on ${cluster.nodes.map((node) => node.port).join(', ')}`);
  }

  const provided: TestStack = {
    redisUrl: stack.redisUrl,
    redisClusterNodes: clusterNodes,
    temporalAddress: stack.temporalAddress,
    temporalNamespace: stack.temporalNamespace,
    dynamodbEndpoint: stack.dynamodbEndpoint,
    dynamodbRegion: stack.dynamodbRegion,
    tablePrefix: stack.tablePrefix,
    dataDir: stack.dataDir,
  };
  project.provide('stack', provided);

  const sharedDb = Number(/\/(\d+)$/.exec(stack.redisUrl)?.[1] ?? '0');
  const pools: AllocationPools = {
    dir: join(stack.dataDir, `allocations-${process.pid}-${randomBytes(4).toString('hex')}`),
    shards: { first: ALLOCATED_SHARDS_FROM, end: LOGICAL_SHARDS },
    redisDbs: Array.from({ length: REDIS_DATABASES }, (_, db) => db).filter((db) => db !== sharedDb),
  };
  allocationsDir = pools.dir;
  // a random start per run: an attached Redis that outlives runs still gives each file fresh streams
  initAllocations(pools, randomInt(pools.shards.first, pools.shards.end));
  project.provide('allocations', pools);
}

export async function teardown(): Promise<void> {
  await Promise.all(clusterProcesses.map((proc) => stopProcess(proc)));
  await stack?.stop();
  if (allocationsDir !== undefined) rmSync(allocationsDir, { recursive: true, force: true });
}
