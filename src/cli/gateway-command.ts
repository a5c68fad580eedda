/**
 * `tollgate gateway`: the API process in gateway mode, its settings given as
 * flags (each one a `TOLLGATE_*`/`API_*` variable, which it overrides). The
 * rest of the process's configuration (Redis, Temporal, DynamoDB) comes from
 * the environment, as for `npm start`. Bad flags exit 2; a schema or cost file
 * with problems exits 1 listing every one, before anything connects.
 */
import { parseArgs } from 'node:util';
import { loadGatewaySchema } from '../gateway/index.js';
import { CONFIG_SCHEMA, ValidationError, loadConfig } from '../shared/index.js';
import type { CliIo, Command } from './command.js';

/** Flag → the variable it sets (string flags). */
const FLAG_VARIABLES = {
  upstream: 'TOLLGATE_UPSTREAM',
  schema: 'TOLLGATE_UPSTREAM_SCHEMA',
  costs: 'TOLLGATE_COSTS',
  port: 'API_PORT',
  host: 'API_HOST',
  'timeout-ms': 'TOLLGATE_UPSTREAM_TIMEOUT_MS',
  'failure-charge': 'TOLLGATE_UPSTREAM_FAILURE_CHARGE',
  'forward-headers': 'TOLLGATE_FORWARD_HEADERS',
  'tenant-header': 'TOLLGATE_TENANT_HEADER',
  'key-id-header': 'TOLLGATE_KEY_ID_HEADER',
} as const satisfies Record<string, keyof typeof CONFIG_SCHEMA.shape>;

const USAGE = `usage: tollgate gateway --upstream <url> [--schema <file.graphql> | --introspect] [--costs <costs.yaml>] [options]

Serves the upstream GraphQL server's schema at /graphql with tollgate in front: identity (API keys), pricing,
limits, 429/202, the actual cost measured on the upstream's response, usage events, /ready, /metrics.

  --upstream <url>          the upstream's GraphQL endpoint (http or https)              TOLLGATE_UPSTREAM
  --schema <file>           the upstream's SDL, pinned (its @cost/@listSize price it)    TOLLGATE_UPSTREAM_SCHEMA
  --introspect              take the schema from the upstream at start (the default)
  --costs <file>            cost file (YAML/JSON: coordinate → weight, listSize)       TOLLGATE_COSTS
  --port <n>, --host <h>    where to listen (default 4000, 127.0.0.1)                    API_PORT, API_HOST
  --timeout-ms <n>          how long one forwarded operation may take (default 10000)    TOLLGATE_UPSTREAM_TIMEOUT_MS
  --failure-charge <c>      minimum (default) | reserved: the charge of a failed upstream TOLLGATE_UPSTREAM_FAILURE_CHARGE
  --forward-headers <list>  request headers passed upstream (default accept-language)    TOLLGATE_FORWARD_HEADERS
  --tenant-header <name>    header carrying the caller's tenant id upstream             TOLLGATE_TENANT_HEADER
  --key-id-header <name>    header carrying the caller's key id upstream                TOLLGATE_KEY_ID_HEADER
  -h, --help                this text

Redis, Temporal and DynamoDB come from the environment (REDIS_URL, TEMPORAL_ADDRESS, DYNAMODB_ENDPOINT, ...),
as for \`npm start\`; see the README's configuration table.`;

/** The variables the flags set, or the problems of the flags (exit 2). */
export function gatewayVariables(args: string[]): { variables: Record<string, string> } | { help: true } | { problems: string[] } {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        ...Object.fromEntries(Object.keys(FLAG_VARIABLES).map((flag) => [flag, { type: 'string' as const }])),
        introspect: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    return { problems: [error instanceof Error ? error.message : String(error)] };
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values['help'] === true) return { help: true };
  const problems: string[] = [];
  if (values['upstream'] === undefined) problems.push('--upstream <url> is required');
  if (values['schema'] !== undefined && values['introspect'] === true) problems.push('--schema and --introspect exclude each other');
  const variables: Record<string, string> = {};
  for (const [flag, name] of Object.entries(FLAG_VARIABLES)) {
    const value = values[flag];
    if (typeof value !== 'string') continue;
    const checked = CONFIG_SCHEMA.shape[name].safeParse(value);
    if (checked.success) variables[name] = value;
    else problems.push(`--${flag} ${JSON.stringify(value)}: ${checked.error.issues.map((issue) => issue.message).join('; ')}`);
  }
  return problems.length > 0 ? { problems } : { variables };
}

/** Loads the process's config and the gateway's schema and cost file; the problems, one per line, when they do not. */
async function validate(env: Record<string, string | undefined>): Promise<string[]> {
  try {
    const config = loadConfig(env);
    if (config.gateway !== undefined) await loadGatewaySchema(config.gateway);
    return [];
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    return error.message.split('\n');
  }
}

export const gatewayCommand: Command = {
  name: 'gateway',
  summary: 'serve an upstream GraphQL server with tollgate in front',
  async run(args: string[], io: CliIo): Promise<number> {
    const outcome = gatewayVariables(args);
    if ('help' in outcome) {
      io.out(USAGE);
      return 0;
    }
    if ('problems' in outcome) {
      io.err(`tollgate gateway: ${outcome.problems.join('\ntollgate gateway: ')}\nrun 'tollgate gateway --help' for the options`);
      return 2;
    }
    const env = { ...io.env, ...outcome.variables };
    const problems = await validate(env);
    if (problems.length > 0) {
      io.err(`tollgate gateway: cannot start:\n  ${problems.join('\n  ')}`);
      return 1;
    }
    await io.runApiProcess(env);
    return 0;
  },
};
