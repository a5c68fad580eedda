/**
 * `tollgate audit` (ledger vs admitted counters of a tenant's billing period, or of every tenant's, through the admin API) and
 * `tollgate quote` (what an operation would cost, through the tenant API's `quote` field, with a tenant
 * API key: the plan's pricing is the key's).
 */
import { readFileSync } from 'node:fs';
import { CliError, apiUrl, callAdmin, table } from './admin-client.js';
import type { Command } from './command.js';
import { progressOf } from './progress.js';
import { commandWithSubcommands, type SubcommandContext } from './subcommands.js';

function readText(file: string, flag: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new CliError(`${flag} ${file}: ${error instanceof Error ? error.message : String(error)}`, 2);
  }
}

const AUDIT_QUERY =
  'query($tenant: String!, $at: String) { audit(tenant: $tenant, at: $at) { tenant periodStart status admitted ledgered inFlight drift duplicateEvents } }';
const AUDIT_COLUMNS = ['tenant', 'periodStart', 'status', 'admitted', 'ledgered', 'inFlight', 'drift'];

/** Audits `--tenant`, or every tenant with an account (a progress bar on a terminal); exit 1 when any drifts. */
async function runAudit(context: SubcommandContext): Promise<void> {
  const tenant = context.values['tenant'];
  const at = context.values['period'];
  const tenants =
    typeof tenant === 'string' ? [tenant] : ((await callAdmin(context.target(), '{ accountTenants }'))['accountTenants'] as string[]);
  const audits: Record<string, unknown>[] = [];
  const progress = progressOf(context.io, tenants.length, 'tenants audited');
  for (const name of tenants) {
    progress.step(audits.length);
    audits.push((await callAdmin(context.target(), AUDIT_QUERY, { tenant: name, at }))['audit'] as Record<string, unknown>);
  }
  progress.clear();
  const drifted = audits.filter((audit) => typeof audit['drift'] === 'number' && audit['drift'] !== 0);
  if (context.isJson) context.io.out(JSON.stringify(typeof tenant === 'string' ? audits[0] : audits, null, 2));
  else {
    context.io.out(table(audits, AUDIT_COLUMNS));
    for (const audit of drifted) context.io.out(`DRIFT: ${String(audit['tenant'])}: ${String(audit['drift'])} units`);
    const unsettled = audits.filter((audit) => audit['status'] === 'unsettled').length;
    if (typeof tenant !== 'string')
      context.io.out(
        `${audits.length} tenants audited, ${drifted.length} with drift${unsettled > 0 ? `, ${unsettled} unsettled (try again)` : ''}`,
      );
  }
  if (drifted.length > 0) throw new CliError(`drift found in ${drifted.length} of ${audits.length} tenants`, 1);
}

export const auditCommand: Command = commandWithSubcommands(
  'audit',
  'billing periods: ledger vs admitted counters, drift listed (exit 1 when any)',
  {
    '': {
      usage: '[--tenant <tenant>] [--period <ISO-8601 instant in the period>]',
      summary:
        'admitted, ledgered, in flight and drift (admitted - ledgered - in flight; 0 when exact) of the period holding --period ' +
        '(default now), of --tenant or of every tenant with an account; exits 1 when any tenant drifts',
      positionals: [],
      options: { tenant: { type: 'string' }, period: { type: 'string' } },
      run: runAudit,
    },
  },
);

export const quoteCommand: Command = commandWithSubcommands('quote', 'what an operation would cost, line by line (nothing is taken)', {
  '': {
    usage: '<file.graphql> [--variables <file.json>] [--operation <name>] [--key <tg_…> | $TOLLGATE_API_KEY]',
    summary: "the operation's requested cost and its breakdown, priced for the key's plan",
    positionals: ['<file.graphql>'],
    options: { variables: { type: 'string' }, operation: { type: 'string' }, key: { type: 'string' } },
    async run(context) {
      const query = readText(context.positionals[0] ?? '', '<file.graphql>');
      let variables: unknown;
      if (typeof context.values['variables'] === 'string') {
        try {
          variables = JSON.parse(readText(context.values['variables'], '--variables'));
        } catch (error) {
          if (error instanceof CliError) throw error;
          throw new CliError(`--variables ${context.values['variables']}: not JSON`, 2);
        }
      }
      const key = (context.values['key'] as string | undefined) ?? context.io.env['TOLLGATE_API_KEY'];
      if (key === undefined || key === '') throw new CliError('a tenant API key is required: --key tg_… or TOLLGATE_API_KEY', 2);
      const url = apiUrl({ url: context.values['url'] as string | undefined }, context.io.env);
      let response: Response;
      try {
        response = await fetch(`${url}/graphql`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
          body: JSON.stringify({
            query:
              'query($q: String!, $v: JSONObject, $o: String) { quote(query: $q, variables: $v, operationName: $o) { operationName operationType cost isDeferrable lines { path coordinate weight size cost } } }',
            variables: { q: query, v: variables ?? null, o: context.values['operation'] ?? null },
          }),
        });
      } catch (error) {
        throw new CliError(
          `cannot reach the API at ${url}: ${error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error)}`,
          1,
        );
      }
      const reply = (await response.json()) as {
        data?: { quote?: Record<string, unknown> };
        errors?: { message: string; extensions?: { code?: string } }[];
      };
      const error = reply.errors?.[0];
      if (error !== undefined) {
        const code = error.extensions?.code ?? String(response.status);
        throw new CliError(
          `${code}: ${error.message}`,
          response.status === 400 || code.startsWith('COST_') || code === 'GRAPHQL_PARSE_FAILED' ? 2 : 1,
        );
      }
      const quote = reply.data?.quote ?? {};
      if (context.isJson) {
        context.io.out(JSON.stringify(quote, null, 2));
        return;
      }
      context.io.out(table(quote['lines'] as Record<string, unknown>[], ['path', 'coordinate', 'weight', 'size', 'cost']));
      context.io.out(
        `total: ${String(quote['cost'])} units (${String(quote['operationType'])}${quote['isDeferrable'] === true ? ', deferrable' : ''})`,
      );
    },
  },
});
