/**
 * Starts, checks and stops the real components tollgate runs against on one
 * machine: Redis (single node and a cluster), the Temporal dev server and
 * DynamoDB Local. Used by `npm start` (infra/start.ts), by the vitest
 * globalSetup and by `npm run infra:*`.
 *
 * Invariants:
 * - every process is started in its own process group with a pid file and a log
 *   under the data dir, so a supervisor can stop it and a later run can reap it
 *   if the supervisor died;
 * - a service is "up" only after a real readiness check: Redis runs a Lua
 *   script, Temporal answers its gRPC health check and knows the namespace,
 *   DynamoDB answers ListTables;
 * - a missing binary or a service that never becomes ready is an error that
 *   names the component and the fix, never a hang.
 *
 * This file imports nothing from src/ (STYLE §1).
 */
import { spawn, execFile } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { Connection } from '@temporalio/client';
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';

const execFileAsync = promisify(execFile);

/** Repository root (the folder holding infra/). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Versions and install locations; must agree with infra/lib.sh. */
export interface InstallPaths {
  cacheDir: string;
  temporalBin: string;
  dynamodbHome: string;
}

/** Reads the install cache layout from the environment (same rules as infra/lib.sh). */
export function installPaths(env: NodeJS.ProcessEnv = process.env): InstallPaths {
  const cacheDir = env['TOLLGATE_CACHE_DIR'] ?? join(env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'tollgate');
  const temporalVersion = env['TEMPORAL_CLI_VERSION'] ?? '1.5.1';
  const dynamodbVersion = env['DYNAMODB_LOCAL_VERSION'] ?? '2.6.1';
  return {
    cacheDir,
    temporalBin: join(cacheDir, `temporal-${temporalVersion}`, 'bin', 'temporal'),
    dynamodbHome: join(cacheDir, `dynamodb-local-${dynamodbVersion}`),
  };
}

/** A component that is missing or failed to start; the message says how to fix it. */
export class InfraError extends Error {
  constructor(
    readonly component: string,
    message: string,
  ) {
    super(`[${component}] ${message}`);
    this.name = 'InfraError';
  }
}

/** A process this module started. */
export interface ManagedProcess {
  name: string;
  pid: number;
  pidFile: string;
  logFile: string;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolveSleep) => setTimeout(resolveSleep, ms));
}

/** True while a process with this pid exists (zombies included). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Asks the OS for a free loopback TCP port. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export async function isPortInUse(port: number): Promise<boolean> {
  return new Promise((resolveInUse) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolveInUse(true));
    server.listen(port, '127.0.0.1', () => server.close(() => resolveInUse(false)));
  });
}

/**
 * Kills a process group left behind by an earlier run, as recorded in its pid
 * file. Only acts when the recorded pid is alive and its command line still
 * contains `expect`, so a reused pid is never killed.
 */
export async function reapStale(pidFile: string, expect: string): Promise<void> {
  if (!existsSync(pidFile)) return;
  const pid = Number.parseInt(readFileSync(pidFile, 'utf8').trim(), 10);
  rmSync(pidFile, { force: true });
  if (!Number.isSafeInteger(pid) || pid <= 1 || !isAlive(pid)) return;
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return;
  }
  if (!cmdline.includes(expect)) return;
  await stopPid(pid, 10_000);
}

async function stopPid(pid: number, graceMs: number): Promise<void> {
  const signalGroup = (signal: NodeJS.Signals): void => {
    try {
      process.kill(-pid, signal);
    } catch {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
  };
  signalGroup('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(50);
  if (isAlive(pid)) {
    signalGroup('SIGKILL');
    const killDeadline = Date.now() + 5_000;
    while (isAlive(pid) && Date.now() < killDeadline) await sleep(50);
  }
}

/**
 * Starts infra/reaper.sh, detached, to stop every process with a pid file in
 * `<dataDir>/pids` if this process dies without cleaning up (SIGKILL). After an
 * orderly stop the pid files are gone and the reaper exits doing nothing.
 */
export function startReaper(dataDir: string): void {
  const pidDir = join(dataDir, 'pids');
  mkdirSync(pidDir, { recursive: true });
  const child = spawn('bash', [join(REPO_ROOT, 'infra', 'reaper.sh'), String(process.pid), pidDir], {
    detached: true,
    stdio: 'ignore',
  });
  child.unref();
}

/** Stops a managed process (its whole group): SIGTERM, then SIGKILL after `graceMs`. */
export async function stopProcess(proc: ManagedProcess, graceMs = 10_000): Promise<void> {
  await stopPid(proc.pid, graceMs);
  rmSync(proc.pidFile, { force: true });
}

interface SpawnInput {
  name: string;
  command: string;
  args: string[];
  dataDir: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/**
 * Spawns a long-running process in its own process group (so a terminal's
 * Ctrl-C reaches only the supervisor, which stops children in order), with
 * stdout and stderr appended to `<dataDir>/logs/<name>.log`.
 */
export function spawnManaged(input: SpawnInput): ManagedProcess {
  const logDir = join(input.dataDir, 'logs');
  const pidDir = join(input.dataDir, 'pids');
  mkdirSync(logDir, { recursive: true });
  mkdirSync(pidDir, { recursive: true });
  const logFile = join(logDir, `${input.name}.log`);
  const pidFile = join(pidDir, `${input.name}.pid`);
  const fd = openSync(logFile, 'a');
  const child = spawn(input.command, input.args, {
    cwd: input.cwd ?? REPO_ROOT,
    env: input.env ?? process.env,
    detached: true,
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  if (child.pid === undefined) {
    throw new InfraError(input.name, `could not spawn ${input.command}; see ${logFile}`);
  }
  child.unref();
  child.on('error', () => {
    // Reported by the readiness check (the process is not alive).
  });
  writeFileSync(pidFile, `${child.pid}\n`);
  return { name: input.name, pid: child.pid, pidFile, logFile };
}

function tailLog(logFile: string, lines = 15): string {
  try {
    return readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function waitReady(input: {
  proc: ManagedProcess | undefined;
  component: string;
  timeoutMs: number;
  check: () => Promise<boolean>;
}): Promise<void> {
  const deadline = Date.now() + input.timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    if (input.proc !== undefined && !isAlive(input.proc.pid)) {
      throw new InfraError(input.component, `exited during startup; last lines of ${input.proc.logFile}:\n${tailLog(input.proc.logFile)}`);
    }
    try {
      if (await input.check()) return;
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
    }
    await sleep(100);
  }
  const where = input.proc === undefined ? '' : `; log: ${input.proc.logFile}\n${tailLog(input.proc.logFile)}`;
  throw new InfraError(input.component, `not ready after ${input.timeoutMs} ms (${lastError || 'no answer'})${where}`);
}

function requireBinary(component: string, path: string, fix: string): void {
  if (!existsSync(path)) throw new InfraError(component, `${path} is missing. ${fix}`);
}

async function which(command: string): Promise<string | undefined> {
  try {
    const { stdout } = await execFileAsync('bash', ['-c', `command -v ${command}`]);
    const found = stdout.trim();
    return found === '' ? undefined : found;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------- Redis

/** How durable the embedded Redis AOF is (DESIGN §5). */
export type RedisFsync = 'always' | 'everysec';

export interface RedisStartInput {
  dataDir: string;
  port: number;
  name?: string;
  appendfsync?: RedisFsync;
  extraArgs?: string[];
  timeoutMs?: number;
}

/**
 * Readiness: the server runs a Lua script that reads its clock. PING alone
 * would pass while scripting is broken or the node is still loading the AOF.
 */
export async function checkRedis(url: string, timeoutMs = 1_000): Promise<boolean> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  client.on('error', () => {
    // surfaced through the rejected command below
  });
  try {
    await client.connect();
    const reply = await client.eval("local t = redis.call('TIME') return tonumber(t[1])", 0);
    return typeof reply === 'number' && reply > 0;
  } finally {
    client.disconnect();
  }
}

async function requireRedisServer(): Promise<string> {
  const bin = await which('redis-server');
  if (bin === undefined) {
    throw new InfraError(
      'redis',
      "redis-server is not installed. Run 'bash infra/install-redis.sh' (apt-get install redis-server) or set REDIS_URL.",
    );
  }
  return bin;
}

function redisArgs(input: { port: number; dir: string; appendfsync: RedisFsync }): string[] {
  return [
    '--bind',
    '127.0.0.1',
    '--port',
    String(input.port),
    '--dir',
    input.dir,
    '--daemonize',
    'no',
    '--save',
    '',
    '--appendonly',
    'yes',
    '--appendfsync',
    input.appendfsync,
    // The decider refuses evicting policies: an evicted bucket is free quota.
    '--maxmemory-policy',
    'noeviction',
    '--protected-mode',
    'yes',
  ];
}

/** Starts one Redis with AOF on 127.0.0.1:port and waits until it runs scripts. */
export async function startRedis(input: RedisStartInput): Promise<ManagedProcess> {
  const bin = await requireRedisServer();
  const name = input.name ?? 'redis';
  const dir = join(input.dataDir, name);
  mkdirSync(dir, { recursive: true });
  await reapStale(join(input.dataDir, 'pids', `${name}.pid`), 'redis-server');
  if (await isPortInUse(input.port)) {
    throw new InfraError('redis', `port ${input.port} is already in use; set TOLLGATE_REDIS_PORT or REDIS_URL`);
  }
  const proc = spawnManaged({
    name,
    command: bin,
    args: [...redisArgs({ port: input.port, dir, appendfsync: input.appendfsync ?? 'everysec' }), ...(input.extraArgs ?? [])],
    dataDir: input.dataDir,
  });
  await waitReady({
    proc,
    component: 'redis',
    timeoutMs: input.timeoutMs ?? 30_000,
    check: () => checkRedis(`redis://127.0.0.1:${input.port}`, 500),
  });
  return proc;
}

export interface RedisClusterInput {
  dataDir: string;
  ports: number[];
  replicasPerMaster?: number;
  timeoutMs?: number;
}

export interface RedisCluster {
  nodes: { host: string; port: number }[];
  processes: ManagedProcess[];
}

/** Redis Cluster's node-to-node bus listens on the client port plus this. */
export const CLUSTER_BUS_OFFSET = 10_000;

/** The lowest local port the kernel gives outgoing connections (Linux), or its usual default elsewhere. */
function ephemeralPortLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(low)) return low;
  } catch {
    // not Linux: fall through
  }
  return 32_768;
}

/**
 * `count` distinct ports for Redis Cluster nodes: each one and its bus port
 * (port + 10000) free now, and both below the ephemeral range, so an outgoing
 * connection cannot take the bus port between this check and the node's bind
 * (ports from `freePort` are ephemeral ones, and their bus port often is too).
 */
export async function freeClusterPorts(count: number): Promise<number[]> {
  const low = ephemeralPortLow();
  const first = 10_000;
  const last = low - CLUSTER_BUS_OFFSET - 1;
  if (last - first < count * 4)
    throw new InfraError('redis-cluster', `no room for ${count} cluster ports below the ephemeral range (${low})`);
  const chosen: number[] = [];
  for (let tries = 0; chosen.length < count; tries += 1) {
    if (tries > count * 200) throw new InfraError('redis-cluster', `found no ${count} free port pairs in ${first}..${last}`);
    const port = first + Math.floor(Math.random() * (last - first + 1));
    if (chosen.includes(port) || chosen.includes(port + CLUSTER_BUS_OFFSET) || chosen.includes(port - CLUSTER_BUS_OFFSET)) continue;
    if ((await isPortInUse(port)) || (await isPortInUse(port + CLUSTER_BUS_OFFSET))) continue;
    chosen.push(port);
  }
  return chosen;
}

/**
 * A local Redis Cluster on ports from `freeClusterPorts`; when a node cannot
 * bind (another process took a port after the check), it tries again on new
 * ports, up to `attempts` times.
 */
export async function startLocalRedisCluster(
  input: Omit<RedisClusterInput, 'ports'> & {
    nodes: number;
    attempts?: number;
    /** Where ports come from. @default freeClusterPorts */
    pickPorts?: (count: number) => Promise<number[]>;
  },
): Promise<RedisCluster> {
  const { nodes, attempts = 3, pickPorts = freeClusterPorts, ...cluster } = input;
  for (let attempt = 1; ; attempt += 1) {
    const ports = await pickPorts(nodes);
    try {
      return await startRedisCluster({ ...cluster, ports });
    } catch (error) {
      const taken = error instanceof InfraError && /Address already in use/.test(error.message);
      if (!taken || attempt >= attempts) throw error;
    }
  }
}

/**
 * Starts a Redis Cluster of `ports.length` nodes (masters plus
 * `replicasPerMaster` replicas each) and waits until every node reports
 * `cluster_state:ok` and runs a script.
 */
export async function startRedisCluster(input: RedisClusterInput): Promise<RedisCluster> {
  const bin = await requireRedisServer();
  const redisCli = await which('redis-cli');
  if (redisCli === undefined) {
    throw new InfraError('redis-cluster', "redis-cli is not installed. Run 'bash infra/install-redis.sh'.");
  }
  const replicas = input.replicasPerMaster ?? 0;
  if (input.ports.length < 3 * (replicas + 1)) {
    throw new InfraError('redis-cluster', `needs at least ${3 * (replicas + 1)} ports for 3 masters`);
  }
  const processes: ManagedProcess[] = [];
  try {
    for (const port of input.ports) {
      const name = `redis-cluster-${port}`;
      const dir = join(input.dataDir, name);
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      await reapStale(join(input.dataDir, 'pids', `${name}.pid`), 'redis-server');
      processes.push(
        spawnManaged({
          name,
          command: bin,
          args: [
            ...redisArgs({ port, dir, appendfsync: 'everysec' }),
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            join(dir, 'nodes.conf'),
            '--cluster-node-timeout',
            '2000',
            // replicas sync at once instead of waiting 5 s for more replicas to batch
            '--repl-diskless-sync-delay',
            '0',
          ],
          dataDir: input.dataDir,
        }),
      );
    }
    for (const [index, port] of input.ports.entries()) {
      await waitReady({
        proc: processes[index],
        component: 'redis-cluster',
        timeoutMs: input.timeoutMs ?? 30_000,
        check: async () => {
          const { stdout } = await execFileAsync(redisCli, ['-p', String(port), 'PING']);
          return stdout.trim() === 'PONG';
        },
      });
    }
    await execFileAsync(redisCli, [
      '--cluster',
      'create',
      ...input.ports.map((port) => `127.0.0.1:${port}`),
      '--cluster-replicas',
      String(replicas),
      '--cluster-yes',
    ]);
    for (const [index, port] of input.ports.entries()) {
      await waitReady({
        proc: processes[index],
        component: 'redis-cluster',
        timeoutMs: input.timeoutMs ?? 30_000,
        check: async () => {
          const { stdout } = await execFileAsync(redisCli, ['-p', String(port), 'CLUSTER', 'INFO']);
          if (!stdout.includes('cluster_state:ok') || !(await checkRedis(`redis://127.0.0.1:${port}`, 500))) return false;
          // a replica is ready only once its initial sync is done (a failover needs it)
          const replication = (await execFileAsync(redisCli, ['-p', String(port), 'INFO', 'replication'])).stdout;
          return replication.includes('role:master') || replication.includes('master_link_status:up');
        },
      });
    }
  } catch (error) {
    await Promise.all(processes.map((proc) => stopProcess(proc)));
    throw error instanceof InfraError ? error : new InfraError('redis-cluster', String(error));
  }
  return { nodes: input.ports.map((port) => ({ host: '127.0.0.1', port })), processes };
}

// ---------------------------------------------------------------- Temporal

export interface TemporalStartInput {
  dataDir: string;
  port: number;
  httpPort: number;
  uiPort?: number;
  /** Namespace that must exist before the server counts as ready. @default 'default' */
  namespace?: string;
  /** `key=value` dynamic config entries, e.g. `limit.historyCount.suggestContinueAsNew=60`. */
  dynamicConfig?: string[];
  /** Persist to `<dataDir>/temporal/temporal.db` (true) or keep everything in memory. @default true */
  persistent?: boolean;
  timeoutMs?: number;
  /** Where the binaries are. @default installPaths() */
  paths?: InstallPaths;
}

/** Readiness: the gRPC health check answers SERVING and the namespace is registered. */
export async function checkTemporal(address: string, namespace: string): Promise<boolean> {
  const connection = await Connection.connect({ address, connectTimeout: 1_000 });
  try {
    const health = await connection.healthService.check({});
    if (Number(health.status) !== 1) return false; // 1 = SERVING
    await connection.workflowService.describeNamespace({ namespace });
    return true;
  } finally {
    await connection.close();
  }
}

/** Starts `temporal server start-dev` on loopback and waits until it is healthy. */
export async function startTemporal(input: TemporalStartInput): Promise<ManagedProcess> {
  const { temporalBin } = input.paths ?? installPaths();
  requireBinary(
    'temporal',
    temporalBin,
    "Run 'bash infra/install-temporal.sh' (go install github.com/temporalio/cli/cmd/temporal@v1.5.1) or set TEMPORAL_ADDRESS.",
  );
  const namespace = input.namespace ?? 'default';
  const dir = join(input.dataDir, 'temporal');
  mkdirSync(dir, { recursive: true });
  await reapStale(join(input.dataDir, 'pids', 'temporal.pid'), 'start-dev');
  for (const port of [input.port, input.httpPort]) {
    if (await isPortInUse(port)) {
      throw new InfraError('temporal', `port ${port} is already in use; set TOLLGATE_TEMPORAL_PORT or TEMPORAL_ADDRESS`);
    }
  }
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(input.port),
    '--http-port',
    String(input.httpPort),
    '--namespace',
    namespace,
    '--log-level',
    'warn',
  ];
  if (input.uiPort === undefined) args.push('--headless');
  else args.push('--ui-port', String(input.uiPort));
  if (input.persistent ?? true) args.push('--db-filename', join(dir, 'temporal.db'));
  for (const entry of input.dynamicConfig ?? []) args.push('--dynamic-config-value', entry);
  const proc = spawnManaged({ name: 'temporal', command: temporalBin, args, dataDir: input.dataDir });
  await waitReady({
    proc,
    component: 'temporal',
    timeoutMs: input.timeoutMs ?? 60_000,
    check: () => checkTemporal(`127.0.0.1:${input.port}`, namespace),
  });
  return proc;
}

// ---------------------------------------------------------------- DynamoDB Local

export interface DynamoStartInput {
  dataDir: string;
  port: number;
  /** Keep tables on disk under `<dataDir>/dynamodb` (true) or in memory. @default true */
  persistent?: boolean;
  timeoutMs?: number;
  /** Where the jars are. @default installPaths() */
  paths?: InstallPaths;
}

/** A DynamoDB client for local endpoints: fixed dummy credentials, no retries. */
export function localDynamoClient(endpoint: string, region = 'local'): DynamoDBClient {
  return new DynamoDBClient({
    endpoint,
    region,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 1,
  });
}

/** Readiness: ListTables answers. */
export async function checkDynamo(endpoint: string, region = 'local'): Promise<boolean> {
  const client = localDynamoClient(endpoint, region);
  try {
    const reply = await client.send(new ListTablesCommand({}), { abortSignal: AbortSignal.timeout(2_000) });
    return Array.isArray(reply.TableNames);
  } finally {
    client.destroy();
  }
}

/** Starts DynamoDB Local (Java) on 127.0.0.1:port and waits until ListTables answers. */
export async function startDynamo(input: DynamoStartInput): Promise<ManagedProcess> {
  const { dynamodbHome } = input.paths ?? installPaths();
  requireBinary(
    'dynamodb-local',
    join(dynamodbHome, '.complete'),
    "Run 'bash infra/install-dynamodb.sh' (fetches DynamoDB Local from Maven Central) or set DYNAMODB_ENDPOINT.",
  );
  const java = await which('java');
  if (java === undefined) {
    throw new InfraError('dynamodb-local', 'java is not installed. Install a Java 17+ runtime or set DYNAMODB_ENDPOINT.');
  }
  await reapStale(join(input.dataDir, 'pids', 'dynamodb.pid'), 'dynamodbv2.local.main.ServerRunner');
  if (await isPortInUse(input.port)) {
    throw new InfraError('dynamodb-local', `port ${input.port} is already in use; set TOLLGATE_DYNAMODB_PORT or DYNAMODB_ENDPOINT`);
  }
  const args = [
    '-Xms64m',
    '-Xmx768m',
    '-XX:+UseSerialGC',
    `-Djava.library.path=${join(dynamodbHome, 'native')}`,
    '-cp',
    join(dynamodbHome, 'lib', '*'),
    'com.amazonaws.services.dynamodbv2.local.main.ServerRunner',
    '-port',
    String(input.port),
    // One database for every region and access key: the SDK's region is not a tenant boundary here.
    '-sharedDb',
    // Local test data only: no usage reporting to AWS.
    '-disableTelemetry',
  ];
  if (input.persistent ?? true) {
    const dir = join(input.dataDir, 'dynamodb');
    mkdirSync(dir, { recursive: true });
    args.push('-dbPath', dir);
  } else {
    args.push('-inMemory');
  }
  // DynamoDB Local binds every interface and has no bind option; it is reachable
  // only where the host's firewall allows, and holds local test data only.
  // it writes dynamodb-local-metadata.json into its working directory: keep that out of the checkout
  const workDir = join(input.dataDir, 'dynamodb-work');
  mkdirSync(workDir, { recursive: true });
  const proc = spawnManaged({ name: 'dynamodb', command: java, args, dataDir: input.dataDir, cwd: workDir });
  await waitReady({
    proc,
    component: 'dynamodb-local',
    timeoutMs: input.timeoutMs ?? 60_000,
    check: () => checkDynamo(`http://127.0.0.1:${input.port}`),
  });
  return proc;
}
