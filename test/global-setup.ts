/**
 * Starts the real services once per test run (through infra/), or attaches to
 * the ones the environment names, and hands their endpoints to test files via
 * `inject('stack')`. An unreachable or missing service throws here, which
 * fails the whole run: integration tests never skip.
 */
import type { TestProject } from 'vitest/node';
import { startLocalRedisCluster, stopProcess, type ManagedProcess } from '../infra/services.js';
import { upStack, type Stack } from '../infra/stack.js';
import type { TestStack } from './support/stack.js';

let stack: Stack | undefined;
let clusterProcesses: ManagedProcess[] = [];

export async function setup(project: TestProject): Promise<void> {
  const log = (line: string): void => console.log(`[global-setup] ${line}`);
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
}

export async function teardown(): Promise<void> {
  await Promise.all(clusterProcesses.map((proc) => stopProcess(proc)));
  await stack?.stop();
}
