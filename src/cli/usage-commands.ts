/**
 * `tollgate audit` (ledger vs admitted counters of a tenant's billing period, through the admin API) and
 * `tollgate quote` (what an operation would cost, through the tenant API's `quote` field, with a tenant
 * API key: the plan's pricing is the key's).
 */
import { readFileSync } from 'node:fs';
import { CliError, apiUrl, callAdmin, table } from './admin-client.js';
import type { Command } from './command.js';
import { commandWithSubcommands } from './subcommands.js';

function readText(file: string, flag: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new CliError(`${flag} ${file}: ${error instanceof Error ? error.message : String(error)}`, 2);
  }
}

export const auditCommand: Command = commandWithSubcommands(
  'audit',
  "a tenant's billing period: ledger vs admitted counters, drift listed",
  {
    '': {
      usage: '--tenant <tenant> [--period <ISO-8601 instant in the period>]',
      summary:
        'admitted, ledgered, in flight and drift (admitted - ledgered - in flight; 0 when exact) of the period holding --period (default now)',
      positionals: [],
      options: { tenant: { type: 'string' }, period: { type: 'string' } },
      async run(context) {
        const tenant = context.values['tenant'];
        if (typeof tenant !== 'string')
          throw new CliError('--tenant <tenant> is required (auditing every tenant is the audit workflow: see /metrics)', 2);
        const data = await callAdmin(
          context.target(),
          'query($tenant: String!, $at: String) { audit(tenant: $tenant, at: $at) { tenant periodStart status admitted ledgered inFlight drift duplicateEvents } }',
          { tenant, at: context.values['period'] },
        );
        const audit = data['audit'] as Record<string, unknown>;
        context.io.out(
          context.isJson
            ? JSON.stringify(audit, null, 2)
            : table([audit], ['tenant', 'periodStart', 'status', 'admitted', 'ledgered', 'inFlight', 'drift']),
        );
        if (!context.isJson && typeof audit['drift'] === 'number' && audit['drift'] !== 0) context.io.out(`DRIFT: ${audit['drift']} units`);
      },
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
