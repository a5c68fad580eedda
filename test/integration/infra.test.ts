/**
 * The infra layer against real processes: readiness, AOF durability, the
 * eviction guard, stale-process reaping, table creation, clear errors for
 * missing or unreachable components, and entry points that exit instead of
 * hanging.
 */
import { spawn, execFile } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DeleteTableCommand, CreateTableCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, describe, expect, it } from 'vitest';
import {
  InfraError,
  REPO_ROOT,
  CLUSTER_BUS_OFFSET,
  freeClusterPorts,
  freePort,
  isAlive,
  localDynamoClient,
  reapStale,
  startDynamo,
  startLocalRedisCluster,
  startRedis,
  startTemporal,
  stopProcess,
  type ManagedProcess,
} from '../../infra/services.js';
import { upStack } from '../../infra/stack.js';
import { ensureTables, tableNames } from '../../infra/tables.js';
import { appendUsage, assertNoEviction, connectDeciderRedis } from '../../src/decider/index.js';
import { DependencyError, parseEventId, parseTenantId } from '../../src/shared/index.js';
import { testStack, uniqueTenant } from '../support/stack.js';

const execFileAsync = promisify(execFile);
const scratch = mkdtempSync(join(tmpdir(), 'tollgate-infra-'));
// Every process a test starts is stopped here too, even when the test fails midway.
const started: ManagedProcess[] = [];

afterAll(async () => {
  await Promise.all(started.map((proc) => stopProcess(proc)));
  rmSync(scratch, { recursive: true, force: true });
});

describe('Redis Cluster ports', () => {
  it('picks node ports whose bus ports are free and below the ephemeral range', async () => {
    // given the kernel's range for outgoing connections' ports
    const [low = 32_768] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    // when ports for a 6-node cluster are picked
    const ports = await freeClusterPorts(6);
    // then they are distinct, and neither a port nor its bus port can be taken by an outgoing connection
    expect(new Set([...ports, ...ports.map((port) => port + CLUSTER_BUS_OFFSET)]).size).toBe(12);
    for (const port of ports) expect(port + CLUSTER_BUS_OFFSET).toBeLessThan(low);
  });

  it('starts the cluster on new ports when a bus port was taken after the check', async () => {
    // given a first pick whose first node's bus port another process holds
    const held = (await freeClusterPorts(1))[0] as number;
    const holder: Server = createServer();
    await new Promise<void>((resolveListen) => holder.listen(held + CLUSTER_BUS_OFFSET, '127.0.0.1', resolveListen));
    const picks: number[][] = [];
    const pickPorts = async (count: number): Promise<number[]> => {
      const ports = picks.length === 0 ? [held, ...(await freeClusterPorts(count - 1))] : await freeClusterPorts(count);
      picks.push(ports);
      return ports;
    };
    try {
      // when a local cluster is started with that picker
      const cluster = await startLocalRedisCluster({ dataDir: join(scratch, 'cluster-retry'), nodes: 3, pickPorts });
      started.push(...cluster.processes);
      // then the first attempt failed on the bind and the second one runs on its own ports
      expect(picks).toHaveLength(2);
      expect(cluster.nodes.map((node) => node.port)).toEqual(picks[1]);
      const { stdout } = await execFileAsync('redis-cli', ['-p', String(cluster.nodes[0]?.port), 'CLUSTER', 'INFO']);
      expect(stdout).toContain('cluster_state:ok');
    } finally {
      await new Promise((resolveClose) => holder.close(resolveClose));
    }
  }, 60_000);
});

describe('Redis', () => {
  it('keeps appended usage and its dedupe marker across a restart from the AOF', async () => {
    // given a Redis with AOF that has recorded one event
    const dataDir = join(scratch, 'aof');
    const port = await freePort();
    const tenant = parseTenantId(uniqueTenant());
    const input = { tenant, eventId: parseEventId('ev-aof'), fields: { cost: '3' }, shardCount: 4 };
    let proc = await startRedis({ dataDir, port, appendfsync: 'always' });
    started.push(proc);
    let client = await connectDeciderRedis({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 1_000 });
    const first = await appendUsage(client, input);
    client.disconnect();
    // when it stops and starts again on the same directory
    await stopProcess(proc);
    proc = await startRedis({ dataDir, port });
    started.push(proc);
    client = await connectDeciderRedis({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 1_000 });
    try {
      // then a retry of the same event is recognised and nothing is appended twice
      const retry = await appendUsage(client, input);
      expect(retry).toMatchObject({ isNew: false, streamId: first.streamId });
    } finally {
      client.disconnect();
      await stopProcess(proc);
    }
  });

  it('refuses a Redis whose maxmemory-policy can evict keys, and accepts noeviction', async () => {
    // given one Redis that evicts and the test stack's, which does not
    const port = await freePort();
    const proc = await startRedis({
      dataDir: join(scratch, 'evict'),
      port,
      extraArgs: ['--maxmemory', '64mb', '--maxmemory-policy', 'allkeys-lru'],
    });
    started.push(proc);
    const evicting = await connectDeciderRedis({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 1_000 });
    const safe = await connectDeciderRedis({ url: testStack().redisUrl, commandTimeoutMs: 1_000 });
    try {
      // then
      await expect(assertNoEviction(evicting)).rejects.toThrow(/maxmemory-policy allkeys-lru/);
      await expect(assertNoEviction(evicting)).rejects.toBeInstanceOf(DependencyError);
      await expect(assertNoEviction(safe)).resolves.toBeUndefined();
    } finally {
      evicting.disconnect();
      safe.disconnect();
      await stopProcess(proc);
    }
  });
});

describe('missing or unreachable components', () => {
  const emptyCache = {
    cacheDir: join(scratch, 'empty'),
    temporalBin: join(scratch, 'empty', 'temporal'),
    dynamodbHome: join(scratch, 'empty', 'ddb'),
  };

  it('names the Temporal CLI and its install script when it is not installed', async () => {
    const start = startTemporal({ dataDir: scratch, port: await freePort(), httpPort: await freePort(), paths: emptyCache });
    await expect(start).rejects.toBeInstanceOf(InfraError);
    await expect(start).rejects.toThrow(/\[temporal\] .*temporal is missing\. Run 'bash infra\/install-temporal\.sh'/);
  });

  it('names DynamoDB Local and its install script when it is not installed', async () => {
    const start = startDynamo({ dataDir: scratch, port: await freePort(), paths: emptyCache });
    await expect(start).rejects.toThrow(/\[dynamodb-local\] .*Run 'bash infra\/install-dynamodb\.sh'/);
  });

  it('fails fast, naming each configured endpoint that does not answer', async () => {
    const closed = await freePort();
    const started = Date.now();
    const up = upStack(
      { profile: 'test', dataDir: join(scratch, 'unreachable'), reapOnExit: false },
      {
        REDIS_URL: `redis://127.0.0.1:${closed}`,
        TEMPORAL_ADDRESS: `127.0.0.1:${closed}`,
        DYNAMODB_ENDPOINT: `http://127.0.0.1:${closed}`,
      },
    );
    const error = await up.then(
      () => undefined,
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(InfraError);
    const message = (error as Error).message;
    expect(message).toContain(`[redis] configured endpoint redis://127.0.0.1:${closed} is unreachable`);
    expect(message).toContain(`[temporal] configured endpoint 127.0.0.1:${closed} is unreachable`);
    expect(message).toContain(`[dynamodb] configured endpoint http://127.0.0.1:${closed} is unreachable`);
    // bounded: each check has its own connect timeout, so this cannot hang
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});

describe('entry points exit instead of hanging', () => {
  const run = async (script: string, env: Record<string, string>) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      cwd: REPO_ROOT,
      env: { PATH: process.env['PATH'] ?? '', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolveExit) => child.on('exit', resolveExit));
    return { code, stderr };
  };

  it('the worker exits 1 naming every missing variable', async () => {
    const { code, stderr } = await run('src/workflows/worker.ts', {});
    expect(code).toBe(1);
    expect(stderr).toContain('REDIS_URL: is required');
    expect(stderr).toContain('TEMPORAL_ADDRESS: is required');
  });

  it('the worker exits 1 naming Temporal when it is unreachable', async () => {
    const closed = await freePort();
    const { code, stderr } = await run('src/workflows/worker.ts', {
      REDIS_URL: testStack().redisUrl,
      TEMPORAL_ADDRESS: `127.0.0.1:${closed}`,
    });
    expect(code).toBe(1);
    expect(stderr).toContain(`Temporal at 127.0.0.1:${closed} is unreachable; check TEMPORAL_ADDRESS`);
  });

  it('the API exits 1 on invalid configuration', async () => {
    const { code, stderr } = await run('src/graphql/server.ts', { REDIS_URL: 'nope', TEMPORAL_ADDRESS: 'x:1' });
    expect(code).toBe(1);
    expect(stderr).toContain('REDIS_URL: must start with redis:// or rediss://');
  });
});

describe('stale processes', () => {
  it('reaps a recorded process only when its command line matches', async () => {
    // given a long-running process recorded in a pid file
    const sleeper = spawn('sleep', ['300'], { detached: true, stdio: 'ignore' });
    const pid = sleeper.pid ?? 0;
    const pidFile = join(scratch, 'sleeper.pid');
    try {
      // when the pid file claims it is a redis-server, it is left alone
      writeFileSync(pidFile, `${pid}\n`);
      await reapStale(pidFile, 'redis-server');
      expect(isAlive(pid)).toBe(true);
      // and when the command line matches, it is stopped
      writeFileSync(pidFile, `${pid}\n`);
      await reapStale(pidFile, 'sleep 300');
      await new Promise((resolveExit) => setTimeout(resolveExit, 50));
      const { stdout } = await execFileAsync('ps', ['-o', 'stat=', '-p', String(pid)]).catch(() => ({ stdout: '' }));
      expect(stdout.trim() === '' || stdout.trim().startsWith('Z')).toBe(true);
    } finally {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
});

describe('DynamoDB tables', () => {
  const stack = testStack();
  const client = localDynamoClient(stack.dynamodbEndpoint, stack.dynamodbRegion);

  afterAll(() => client.destroy());

  it('creates every table once and is a no-op when run again', async () => {
    const prefix = `${uniqueTenant('p')}_`;
    const first = await ensureTables(client, prefix);
    const second = await ensureTables(client, prefix);
    expect(first).toEqual(Object.values(tableNames(prefix)));
    expect(second).toEqual(first);
    await Promise.all(first.map((name) => client.send(new DeleteTableCommand({ TableName: name }))));
  });

  it('refuses a table that exists with another key schema', async () => {
    const prefix = `${uniqueTenant('p')}_`;
    await client.send(
      new CreateTableCommand({
        TableName: `${prefix}ledger`,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
      }),
    );
    await expect(ensureTables(client, prefix)).rejects.toThrow(
      `table ${prefix}ledger exists with key schema id:HASH, expected pk:HASH,sk:RANGE`,
    );
  });
});
