import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gatewayVariables } from '../../../src/cli/gateway-command.js';
import { runCli } from '../../../src/cli/tollgate.js';

const REQUIRED = { REDIS_URL: 'redis://127.0.0.1:6390', TEMPORAL_ADDRESS: '127.0.0.1:7243' };

/** Runs the CLI with a recording io; the process is never started, its env is recorded. */
async function cli(argv: string[]): Promise<{ code: number; out: string; err: string; started: Record<string, string | undefined>[] }> {
  let out = '';
  let err = '';
  const started: Record<string, string | undefined>[] = [];
  const code = await runCli(argv, {
    out: (text) => (out += `${text}\n`),
    err: (text) => (err += `${text}\n`),
    env: REQUIRED,
    runApiProcess: (env) => {
      started.push(env);
      return Promise.resolve();
    },
  });
  return { code, out, err, started };
}

describe('tollgate', () => {
  it('lists its commands on --help, and exits 2 on no or an unknown command', async () => {
    expect(await cli(['--help'])).toMatchObject({ code: 0, out: expect.stringContaining('gateway') as unknown });
    expect((await cli([])).code).toBe(2);
    const unknown = await cli(['admin']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain("unknown command 'admin'");
  });
});

describe('tollgate gateway', () => {
  it('maps its flags to the variables of the process', () => {
    expect(gatewayVariables(['--upstream', 'http://127.0.0.1:4001/graphql', '--costs', 'c.yaml', '--port', '4100'])).toEqual({
      variables: { TOLLGATE_UPSTREAM: 'http://127.0.0.1:4001/graphql', TOLLGATE_COSTS: 'c.yaml', API_PORT: '4100' },
    });
  });

  it('exits 2 naming every bad flag, without starting anything', async () => {
    const run = await cli(['gateway', '--upstream', 'ftp://x', '--port', '0', '--failure-charge', 'double']);
    expect(run.code).toBe(2);
    expect(run.err).toContain('--upstream "ftp://x": must be an http:// or https:// URL');
    expect(run.err).toContain('--port "0"');
    expect(run.err).toContain('--failure-charge "double"');
    expect(run.started).toEqual([]);
    expect((await cli(['gateway', '--bogus'])).code).toBe(2);
    expect((await cli(['gateway', '--schema', 's.graphql'])).err).toContain('--upstream <url> is required');
    expect((await cli(['gateway', '--upstream', 'http://u/graphql', '--schema', 's', '--introspect'])).err).toContain('exclude each other');
  });

  it('exits 1 listing every problem of the schema and cost files, without starting anything', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-cli-'));
    writeFileSync(join(dir, 'schema.graphql'), 'type Book { title: String! }\ntype Query { books(first: Int!): [Book!]! }\n');
    writeFileSync(join(dir, 'costs.yaml'), 'Query.nope: { weight: 1 }\nBook.title: { weight: -1 }\n');
    const run = await cli([
      'gateway',
      ...['--upstream', 'http://127.0.0.1:1/graphql', '--schema', join(dir, 'schema.graphql'), '--costs', join(dir, 'costs.yaml')],
    ]);
    expect(run.code).toBe(1);
    expect(run.err).toContain('Query.nope: Query has no field nope');
    expect(run.err).toContain('Book.title.weight must be an integer');
    expect(run.started).toEqual([]);
  });

  it('starts the process with its flags over the environment when everything checks out', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-cli-'));
    writeFileSync(join(dir, 'schema.graphql'), 'type Query { hello: String }\n');
    const run = await cli(['gateway', '--upstream', 'http://127.0.0.1:1/graphql', '--schema', join(dir, 'schema.graphql')]);
    expect(run.code).toBe(0);
    expect(run.started).toEqual([
      { ...REQUIRED, TOLLGATE_UPSTREAM: 'http://127.0.0.1:1/graphql', TOLLGATE_UPSTREAM_SCHEMA: join(dir, 'schema.graphql') },
    ]);
  });
});
