/**
 * What every admin command shares: where the admin API is and which token to send (flags, else the
 * environment, else the first-start token file), one GraphQL call, and its failures as exit codes:
 * 2 for input the CLI or the API refused (bad arguments, invalid ids, unknown tenant, conflicts), 1 for
 * anything else (unreachable API, refused token, a dependency down). The token is never printed.
 */
import { existsSync, readFileSync } from 'node:fs';

/** Flags every admin command takes. */
export const COMMON_OPTIONS = {
  url: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const COMMON_USAGE = `common options:
  --url <url>      the API process (default $TOLLGATE_ADMIN_URL, else http://127.0.0.1:4000)
  --token <tga_…>  an admin token (default $TOLLGATE_ADMIN_TOKEN, else the token in $TOLLGATE_ADMIN_TOKEN_FILE
                   or .data/admin-token.json, written by \`npm start\`)
  --json           print JSON instead of a table
  -h, --help       this text`;

/** A failure with the exit code it ends the command with. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
  ) {
    super(message);
  }
}

export interface AdminTarget {
  url: string;
  token: string;
}

/** Codes of the admin API that mean the input was refused (exit 2). */
const INPUT_CODES = new Set([
  'INVALID_INPUT',
  'INVALID_ID',
  'ACCOUNT_INVALID',
  'NOT_FOUND',
  'CONFLICT',
  'GRAPHQL_VALIDATION_FAILED',
  'BAD_USER_INPUT',
]);

function tokenFromFile(file: string): string | undefined {
  if (!existsSync(file)) return undefined;
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as { token?: unknown };
    return typeof parsed.token === 'string' ? parsed.token : undefined;
  } catch {
    return undefined;
  }
}

/** The API process's base URL (`--url`, else TOLLGATE_ADMIN_URL, else the local default). @throws CliError (exit 2) */
export function apiUrl(values: { url?: string | undefined }, env: Record<string, string | undefined>): string {
  const url = (values.url ?? env['TOLLGATE_ADMIN_URL'] ?? 'http://127.0.0.1:4000').replace(/\/+$/, '');
  if (!/^https?:\/\//.test(url)) throw new CliError(`--url ${JSON.stringify(url)}: must start with http:// or https://`, 2);
  return url;
}

/** @throws CliError (exit 2) when no token is given anywhere */
export function adminTarget(
  values: { url?: string | undefined; token?: string | undefined },
  env: Record<string, string | undefined>,
): AdminTarget {
  const url = apiUrl(values, env);
  const token = values.token ?? env['TOLLGATE_ADMIN_TOKEN'] ?? tokenFromFile(env['TOLLGATE_ADMIN_TOKEN_FILE'] ?? '.data/admin-token.json');
  if (token === undefined || token === '') {
    throw new CliError('no admin token: pass --token, set TOLLGATE_ADMIN_TOKEN, or run where `npm start` wrote .data/admin-token.json', 2);
  }
  return { url, token };
}

interface GraphQLReply {
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: { code?: string; details?: { problems?: string[] } } }[];
}

/**
 * One call of the admin API; its data.
 * @throws CliError exit 1 (unreachable, 401, a failure of the API) or 2 (input refused)
 */
export async function callAdmin(
  target: AdminTarget,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<Record<string, unknown>> {
  let response: Response;
  try {
    response = await fetch(`${target.url}/admin/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${target.token}` },
      body: JSON.stringify({ query, variables }),
    });
  } catch (error) {
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
    throw new CliError(`cannot reach the admin API at ${target.url}: ${cause}`, 1);
  }
  if (response.status === 401) throw new CliError('admin authentication failed: check --token or TOLLGATE_ADMIN_TOKEN', 1);
  let reply: GraphQLReply;
  try {
    reply = (await response.json()) as GraphQLReply;
  } catch {
    throw new CliError(`the admin API answered ${response.status} without JSON (is ${target.url} a tollgate API?)`, 1);
  }
  const error = reply.errors?.[0];
  if (error !== undefined) {
    const code = error.extensions?.code ?? 'ERROR';
    throw new CliError(`${code}: ${error.message}`, INPUT_CODES.has(code) ? 2 : 1);
  }
  return reply.data ?? {};
}

/** Rows as an aligned text table (columns in `columns` order; null and undefined as '-'). */
export function table(rows: Record<string, unknown>[], columns: string[]): string {
  if (rows.length === 0) return '(none)';
  const cell = (value: unknown): string => {
    if (value === null || value === undefined) return '-';
    if (typeof value === 'string') return value;
    return typeof value === 'number' || typeof value === 'boolean' ? String(value) : JSON.stringify(value);
  };
  const cells = rows.map((row) => columns.map((column) => cell(row[column])));
  const widths = columns.map((column, index) => Math.max(column.length, ...cells.map((row) => (row[index] ?? '').length)));
  const line = (values: string[]): string =>
    values
      .map((value, index) => value.padEnd(widths[index] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(columns.map((column) => column.toUpperCase())), ...cells.map(line)].join('\n');
}
