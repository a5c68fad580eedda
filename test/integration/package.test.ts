/**
 * The package as someone else installs it: built (JS and type declarations),
 * packed with `npm pack`, installed into an empty project, and used there: a
 * yoga server of that project's own schema with `useTollgate` in front (over a
 * real socket, against the test stack's Redis), and a worker of that project
 * (`tollgate/metering`) pumping its usage into the DynamoDB ledger. The type
 * declarations are checked by compiling a TypeScript file of that project.
 * And the package's command: `npx tollgate gateway` in that project, in front
 * of an upstream yoga server the test starts, serves and limits its schema.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, cpSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import { createSchema, createYoga } from 'graphql-yoga';
import { freePort } from '../../infra/services.js';
import { COST_DIRECTIVES_SDL } from '../../src/graphql/index.js';
import { parseLimitId } from '../../src/shared/index.js';
import { storeTenantPlan } from '../support/api-server.js';
import { DynamoLedgerStore, createDynamoClient } from '../../src/metering/index.js';
import { meterPumpId } from '../../src/workflows/index.js';
import { LOGICAL_SHARDS, allocateShards, tenantInShards } from '../support/allocate.js';
import { waitFor } from '../support/poll.js';
import { closeAll } from '../support/teardown.js';
import { stackEnv, testConfig, testStack } from '../support/stack.js';
import { MONTH, monthStartMs } from '../support/time.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const require = createRequire(import.meta.url);
const versionOf = (name: string): string => (require(`${name}/package.json`) as { version: string }).version;
const config = testConfig();
const stack = testStack();
// the tenant's shard is this file's own: its pump and stream are touched by nothing else
const shards = allocateShards(1);
const tenant = tenantInShards(shards, 'pkg');

function run(command: string, args: string[], cwd: string): string {
  const result = spawnSync(command, args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false' },
  });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.status}):\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/** The consumer's server: its own schema, `useTollgate` from `tollgate/yoga`, `RedisDecider` from `tollgate/decider`. */
const SERVER = `
import { createServer } from 'node:http';
import { createSchema, createYoga } from 'graphql-yoga';
import { COST_DIRECTIVES_SDL, InMemoryKeyStore, InMemoryPlanStore, createLogger, parsePlan, systemClock, useTollgate } from 'tollgate/yoga';
import { RedisDecider, connectDeciderRedis } from 'tollgate/decider';

const month = { unit: 'month', anchorDay: 1, timeZone: 'UTC' };
const redis = await connectDeciderRedis({ url: process.env.REDIS_URL });
const decider = new RedisDecider(redis, { shardCount: Number(process.env.SHARDS), clock: systemClock });
const plans = new InMemoryPlanStore([
  parsePlan({
    id: 'starter', version: 1, billingPeriod: month, maxCostPerOperation: 100,
    limits: [{ id: 'monthly', scope: 'tenant', mode: 'hard', onDeciderDown: 'closed',
      algorithm: { kind: 'period-quota', limit: 25, period: month, thresholdsPercent: [] } }],
  }),
]);
const keyStore = new InMemoryKeyStore();
const { key } = keyStore.add({ tenant: process.env.TENANT, keyId: 'k1', planId: 'starter' });
const schema = createSchema({
  typeDefs: COST_DIRECTIVES_SDL + \`
    type Book { title: String! }
    type Query { books(first: Int!): [Book!]! @listSize(slicingArguments: ["first"]) }\`,
  // at most 8 books however many are asked for: a request for 10 is charged 10 and refunded 2
  resolvers: { Query: { books: (_, { first }) => Array.from({ length: Math.min(first, 8) }, (_, i) => ({ title: 'book ' + i })) } },
});
const logger = createLogger({ level: 'silent', name: 'consumer' });
const yoga = createYoga({ schema, plugins: [useTollgate({ decider, keyStore, plans, logger })] });
const server = createServer(yoga);
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port, key })));
process.on('SIGTERM', () => { server.close(); redis.disconnect(); });
`;

/** A TypeScript file of the consumer: compiles only if the declarations are shipped and resolve by subpath. */
/** The consumer's worker: \`tollgate/metering\` pumps the tenant's shard of the usage stream into the ledger. */
const WORKER = `
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { createLogger, createTollgateWorker, ensureMeterWorkflows, loadConfig, meterSettings } from 'tollgate/metering';

const config = loadConfig(process.env);
const logger = createLogger({ level: 'warn', name: 'consumer-worker' });
const connection = await NativeConnection.connect({ address: config.temporal.address });
const { worker, close } = await createTollgateWorker({ config, connection, logger });
const running = worker.run();
const clientConnection = await Connection.connect({ address: config.temporal.address });
const client = new Client({ connection: clientConnection, namespace: config.temporal.namespace });
await ensureMeterWorkflows(client, { shards: [Number(process.env.SHARD)], taskQueue: config.temporal.taskQueue, settings: meterSettings(config) });
console.log('pumping');
process.on('SIGTERM', () => worker.shutdown());
await running;
close();
await clientConnection.close();
await connection.close();
`;

const TYPED = `
import type { Decider, LimitSpec } from 'tollgate/decider';
import { useTollgate, type TollgateOptions } from 'tollgate/yoga';
import type { TollgateWorkerInput } from 'tollgate/metering';
export const options = (decider: Decider, rest: Omit<TollgateOptions, 'decider'>): TollgateOptions => ({ ...rest, decider });
export const plugin: typeof useTollgate = useTollgate;
export type Limit = LimitSpec['mode'];
export type Worker = TollgateWorkerInput['taskQueue'];
`;

describe('the package, installed into an empty project', () => {
  let dir: string;
  let server: ChildProcess | undefined;
  let worker: ChildProcess | undefined;
  let endpoint: { port: number; key: string };
  const taskQueue = `package-${tenant}`;
  const dynamo = createDynamoClient({ endpoint: stack.dynamodbEndpoint, region: stack.dynamodbRegion });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tollgate-package-'));
    // given the package built and packed from a staging copy (the repo's own dist/ is left alone)
    const staging = join(dir, 'staging');
    mkdirSync(staging);
    cpSync(join(REPO, 'package.json'), join(staging, 'package.json'));
    cpSync(join(REPO, 'README.md'), join(staging, 'README.md'));
    cpSync(join(REPO, 'bin'), join(staging, 'bin'), { recursive: true });
    run(
      process.execPath,
      [require.resolve('typescript/bin/tsc'), '-p', join(REPO, 'tsconfig.build.json'), '--outDir', join(staging, 'dist')],
      REPO,
    );
    cpSync(join(REPO, 'lua'), join(staging, 'dist', 'lua'), { recursive: true });
    run('npm', ['pack', '--pack-destination', dir], staging);
    const tarball = readdirSync(dir).find((name) => name.endsWith('.tgz'));
    expect(tarball).toBeDefined();
    // and installed, with graphql and graphql-yoga of the host project, into an empty one
    const consumer = join(dir, 'consumer');
    mkdirSync(consumer);
    writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    run(
      'npm',
      [
        'install',
        '--prefer-offline',
        join(dir, tarball ?? ''),
        `graphql@${versionOf('graphql')}`,
        `graphql-yoga@${versionOf('graphql-yoga')}`,
      ],
      consumer,
    );
    writeFileSync(join(consumer, 'server.mjs'), SERVER);
    writeFileSync(join(consumer, 'worker.mjs'), WORKER);
    writeFileSync(join(consumer, 'typed.ts'), TYPED);
    const env = {
      ...process.env,
      ...stackEnv(),
      DECIDER_SHARDS: String(LOGICAL_SHARDS),
      TEMPORAL_TASK_QUEUE: taskQueue,
      METER_IDLE_DELAY_MS: '100',
    };
    const started = (script: string, env: NodeJS.ProcessEnv): { child: ChildProcess; firstLine: Promise<string> } => {
      const child = spawn(process.execPath, [script], { cwd: consumer, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const firstLine = new Promise<string>((resolve, reject) => {
        child.stdout?.once('data', (chunk: Buffer) => resolve(chunk.toString()));
        child.once('exit', (code) => reject(new Error(`the consumer's ${script} exited (${code}): ${stderr}`)));
      });
      return { child, firstLine };
    };
    const api = started('server.mjs', { ...env, REDIS_URL: config.redis.url, SHARDS: String(LOGICAL_SHARDS), TENANT: tenant });
    server = api.child;
    endpoint = JSON.parse(await api.firstLine) as { port: number; key: string };
    const pump = started('worker.mjs', { ...env, SHARD: String(shards.first) });
    worker = pump.child;
    expect(await pump.firstLine).toContain('pumping');
  }, 300_000);

  afterAll(async () => {
    server?.kill('SIGTERM');
    worker?.kill('SIGTERM');
    const temporal = await Connection.connect({ address: stack.temporalAddress });
    await new Client({ connection: temporal, namespace: stack.temporalNamespace }).workflow
      .getHandle(meterPumpId(shards.first))
      .terminate('test over')
      .catch(() => undefined);
    await closeAll(temporal, dynamo);
    rmSync(dir, { recursive: true, force: true });
  });

  it('ships built JS, declarations, the Lua scripts and the API process the command runs, but not the demo', () => {
    const installed = join(dir, 'consumer', 'node_modules', 'tollgate');
    const files = (sub: string): string[] => readdirSync(join(installed, sub), { recursive: true }).map(String);
    expect(files('dist/src/package').sort()).toEqual([
      'decider.d.ts',
      'decider.js',
      'gateway.d.ts',
      'gateway.js',
      'metering.d.ts',
      'metering.js',
      'yoga.d.ts',
      'yoga.js',
    ]);
    expect(files('dist/lua').sort()).toEqual(['append-usage.lua', 'clock.lua', 'decide.lua', 'instances.lua', 'settle.lua']);
    const graphql = files('dist/src/graphql');
    expect(graphql).toContain('plugins/use-tollgate.js');
    expect(graphql.filter((name) => name.startsWith('demo'))).toEqual([]);
    expect(graphql).toEqual(expect.arrayContaining(['api-process.js', 'server.js', 'surface.js']));
    expect(files('dist/src/cli')).toContain('tollgate.js');
    const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as { peerDependencies: Record<string, string> };
    expect(Object.keys(manifest.peerDependencies).sort()).toEqual(['graphql', 'graphql-yoga']);
  });

  it("limits the project's own schema, refunds what it did not return, and its usage reaches the ledger through tollgate/metering", async () => {
    const ask = (): Promise<Response> =>
      fetch(`http://127.0.0.1:${endpoint.port}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${endpoint.key}` },
        body: JSON.stringify({ query: '{ books(first: 10) { title } }' }),
      });
    // when a client asks for 10 books at a time (8 exist) against a 25-unit monthly quota
    const first = await ask();
    const second = await ask();
    const third = await ask();
    // then each of the first two reserves 10, is charged the 8 it returned and refunded 2 (25 - 8 - 8 = 9 left)
    for (const response of [first, second]) {
      expect(response.status).toBe(200);
      expect(response.headers.get('ratelimit-policy')).toMatch(/^"monthly";q=25;w=\d+$/);
      const body = (await response.json()) as {
        data: { books: unknown[] };
        extensions: { cost: { requested: number; actual: number; refunded: number } };
      };
      expect(body.data.books).toHaveLength(8);
      expect(body.extensions.cost).toMatchObject({ requested: 10, actual: 8, refunded: 2 });
    }
    // and the third (10 > 9) is refused without running
    expect(third.status).toBe(429);
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
    const refused = (await third.json()) as { data?: unknown; errors: { extensions: { code: string } }[] };
    expect(refused.errors[0]?.extensions.code).toBe('QUOTA_EXHAUSTED');
    expect(refused.data).toBeUndefined();
    // and the consumer's worker ledgers exactly what was charged: 8 + 8
    const ledger = new DynamoLedgerStore(dynamo, { tablePrefix: stack.tablePrefix });
    const periodStart = new Date(monthStartMs(Date.now())).toISOString();
    const balance = await waitFor('the usage of the two admitted requests in the ledger', async () => {
      const read = await ledger.getBalance({ tenant, periodStart });
      return read.amount === 16 ? read : undefined;
    });
    expect(balance.amount).toBe(16);
  });

  it('type-checks a TypeScript file of the project against the shipped declarations', () => {
    const consumer = join(dir, 'consumer');
    writeFileSync(
      join(consumer, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, skipLibCheck: true, types: [] },
        files: ['typed.ts'],
      }),
    );
    expect(() => run(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json'], consumer)).not.toThrow();
    // and the check can fail: a subpath the package does not export is an error
    writeFileSync(join(consumer, 'typed.ts'), `${TYPED}\nimport type { DemoStore } from 'tollgate/demo';\nexport type D = DemoStore;\n`);
    expect(() => run(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json'], consumer)).toThrow(/tollgate\/demo/);
  });

  it("runs `npx tollgate gateway` in the project, in front of an upstream, and limits the upstream's schema", async () => {
    // given an upstream yoga server of its own schema (8 books; a book costs 1), its SDL pinned in the project
    const sdl = `${COST_DIRECTIVES_SDL}
      type Book { title: String! }
      type Query { books(first: Int!): [Book!]! @listSize(slicingArguments: ["first"]) }`;
    let forwarded = 0;
    const yoga = createYoga({
      schema: createSchema({
        typeDefs: sdl,
        resolvers: {
          Query: {
            books: (_: unknown, { first }: { first: number }) => {
              forwarded += 1;
              return Array.from({ length: Math.min(first, 8) }, (_, i) => ({ title: `book ${i}` }));
            },
          },
        },
      }),
      logging: false,
    });
    const upstream = createServer((request, response) => void yoga(request, response));
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const consumer = join(dir, 'consumer');
    writeFileSync(join(consumer, 'schema.graphql'), sdl);
    // and a tenant with 7 units a month, its key in the config table the gateway reads
    const { key } = await storeTenantPlan([
      {
        id: parseLimitId('monthly'),
        scope: 'tenant',
        mode: 'hard',
        onDeciderDown: 'closed',
        algorithm: { kind: 'period-quota', limit: 7, period: MONTH, thresholdsPercent: [] },
      },
    ]);
    // when the project runs the package's command
    const port = await freePort();
    const gateway = spawn(
      'npx',
      ['--no-install', 'tollgate', 'gateway', '--upstream', `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/graphql`],
      {
        cwd: consumer,
        env: {
          ...process.env,
          ...stackEnv(),
          AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
          TOLLGATE_UPSTREAM_SCHEMA: 'schema.graphql',
          API_PORT: String(port),
          API_DEMO_SEED: 'false',
          DECIDER_SHARDS: String(LOGICAL_SHARDS),
          DECIDER_SPOOL_PATH: join(dir, 'spool'),
          JOBS_TASK_QUEUE: `package-gateway-${port}`,
          LOG_LEVEL: 'info',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      },
    );
    let output = '';
    gateway.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    gateway.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      await waitFor(
        'the packaged gateway to listen',
        () => {
          if (gateway.exitCode !== null) throw new Error(`tollgate gateway exited ${gateway.exitCode}:\n${output}`);
          return output.includes('api listening');
        },
        { timeoutMs: 120_000, intervalMs: 250 },
      );
      const ask = (): Promise<Response> =>
        fetch(`http://127.0.0.1:${port}/graphql`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
          body: JSON.stringify({ query: '{ books(first: 3) { title } }' }),
        });
      const before = forwarded;
      const statuses: number[] = [];
      const bodies: unknown[] = [];
      for (let i = 0; i < 3; i += 1) {
        const response = await ask();
        statuses.push(response.status);
        bodies.push(await response.json());
      }
      // then the first two (3 units each) are served from the upstream, the third (3 > 1 left) refused and not forwarded
      expect(statuses).toEqual([200, 200, 429]);
      expect(bodies[0]).toMatchObject({ data: { books: [{ title: 'book 0' }, { title: 'book 1' }, { title: 'book 2' }] } });
      expect(bodies[2]).toMatchObject({ errors: [{ extensions: { code: 'QUOTA_EXHAUSTED' } }] });
      expect(forwarded - before).toBe(2);
      expect(output).toContain('gateway mode');
    } finally {
      if (gateway.pid !== undefined && gateway.exitCode === null) process.kill(-gateway.pid, 'SIGTERM');
      upstream.closeAllConnections();
      await new Promise((resolve) => upstream.close(resolve));
    }
  }, 240_000);
});
