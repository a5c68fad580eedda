/**
 * The package as someone else installs it: built (JS and type declarations),
 * packed with `npm pack`, installed into an empty project, and used there by
 * a yoga server of that project's own schema with `useTollgate` in front,
 * over a real socket against the test stack's Redis. The type declarations
 * are checked by compiling a TypeScript file of that project.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, cpSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig, uniqueTenant } from '../support/stack.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const require = createRequire(import.meta.url);
const versionOf = (name: string): string => (require(`${name}/package.json`) as { version: string }).version;
const config = testConfig();

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
  resolvers: { Query: { books: (_, { first }) => Array.from({ length: first }, (_, i) => ({ title: 'book ' + i })) } },
});
const logger = createLogger({ level: 'silent', name: 'consumer' });
const yoga = createYoga({ schema, plugins: [useTollgate({ decider, keyStore, plans, logger })] });
const server = createServer(yoga);
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port, key })));
process.on('SIGTERM', () => { server.close(); redis.disconnect(); });
`;

/** A TypeScript file of the consumer: compiles only if the declarations are shipped and resolve by subpath. */
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
  let endpoint: { port: number; key: string };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tollgate-package-'));
    // given the package built and packed from a staging copy (the repo's own dist/ is left alone)
    const staging = join(dir, 'staging');
    mkdirSync(staging);
    cpSync(join(REPO, 'package.json'), join(staging, 'package.json'));
    cpSync(join(REPO, 'README.md'), join(staging, 'README.md'));
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
    writeFileSync(join(consumer, 'typed.ts'), TYPED);
    const child = spawn(process.execPath, ['server.mjs'], {
      cwd: consumer,
      env: { ...process.env, REDIS_URL: config.redis.url, SHARDS: String(config.redis.shardCount), TENANT: uniqueTenant('pkg') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    server = child;
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    endpoint = await new Promise((resolve, reject) => {
      child.stdout?.once('data', (chunk: Buffer) => resolve(JSON.parse(chunk.toString()) as { port: number; key: string }));
      child.once('exit', (code) => reject(new Error(`the consumer's server exited (${code}): ${stderr}`)));
    });
  }, 300_000);

  afterAll(() => {
    server?.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  it('ships built JS, declarations and the Lua scripts, and neither the demo nor the app that serves it', () => {
    const installed = join(dir, 'consumer', 'node_modules', 'tollgate');
    const files = (sub: string): string[] => readdirSync(join(installed, sub), { recursive: true }).map(String);
    expect(files('dist/src/package').sort()).toEqual([
      'decider.d.ts',
      'decider.js',
      'metering.d.ts',
      'metering.js',
      'yoga.d.ts',
      'yoga.js',
    ]);
    expect(files('dist/lua').sort()).toEqual(['append-usage.lua', 'clock.lua', 'decide.lua', 'settle.lua']);
    const graphql = files('dist/src/graphql');
    expect(graphql).toContain('plugins/use-tollgate.js');
    expect(graphql.filter((name) => name.startsWith('demo') || /^(app|api-process|server)\./.test(name))).toEqual([]);
    const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as { peerDependencies: Record<string, string> };
    expect(Object.keys(manifest.peerDependencies).sort()).toEqual(['graphql', 'graphql-yoga']);
  });

  it("limits the project's own schema: cost in extensions, RateLimit headers, then 429 when the quota is spent", async () => {
    const ask = (): Promise<Response> =>
      fetch(`http://127.0.0.1:${endpoint.port}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${endpoint.key}` },
        body: JSON.stringify({ query: '{ books(first: 10) { title } }' }),
      });
    // when a client spends 10 units at a time of a 25-unit monthly quota
    const first = await ask();
    const second = await ask();
    const third = await ask();
    // then two are served and charged, and the third is refused without running
    expect(first.status).toBe(200);
    expect(first.headers.get('ratelimit')).toMatch(/^"monthly";r=15;t=\d+$/);
    const body = (await first.json()) as { data: { books: unknown[] }; extensions: { cost: { requested: number } } };
    expect(body.data.books).toHaveLength(10);
    expect(body.extensions.cost.requested).toBe(10);
    expect(second.status).toBe(200);
    expect(second.headers.get('ratelimit')).toMatch(/^"monthly";r=5;t=\d+$/);
    expect(third.status).toBe(429);
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
    const refused = (await third.json()) as { data?: unknown; errors: { extensions: { code: string } }[] };
    expect(refused.errors[0]?.extensions.code).toBe('QUOTA_EXHAUSTED');
    expect(refused.data).toBeUndefined();
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
});
