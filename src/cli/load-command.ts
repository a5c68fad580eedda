/**
 * `tollgate load`: a traffic generator for trying limits out. Open loop: requests are sent on schedule
 * (`--rate` per second for `--duration` seconds) whatever the answers, spread over the keys of
 * `--tenants` tenants (from a keys file as `npm start` writes it, or one `--key`), with a progress line
 * every second and a summary by status at the end. Keys are never printed.
 */
import { readFileSync } from 'node:fs';
import { CliError, apiUrl, table } from './admin-client.js';
import type { Command } from './command.js';
import { commandWithSubcommands, intFlag } from './subcommands.js';

const DEFAULT_QUERY = '{ products(first: 6) { nodes { id } } }';

/** The keys to send with: `--key`, else the first `tenants` keys of the keys file. @throws CliError (exit 2) */
function keysOf(values: Record<string, unknown>, env: Record<string, string | undefined>, tenants: number): string[] {
  const key = (values['key'] as string | undefined) ?? env['TOLLGATE_API_KEY'];
  if (key !== undefined && key !== '') return [key];
  const file = (values['keys-file'] as string | undefined) ?? '.data/demo-keys.json';
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new CliError(
      `no key: give --key or a keys file (--keys-file ${file}: ${error instanceof Error ? error.message : String(error)})`,
      2,
    );
  }
  const keys = (Array.isArray(parsed) ? parsed : [])
    .map((entry: unknown) => (typeof entry === 'object' && entry !== null ? (entry as Record<string, unknown>)['key'] : undefined))
    .filter((entry): entry is string => typeof entry === 'string');
  if (keys.length < tenants) throw new CliError(`--tenants ${tenants}: ${file} holds ${keys.length} key(s)`, 2);
  return keys.slice(0, tenants);
}

export const loadCommand: Command = commandWithSubcommands('load', 'send traffic at a steady rate and watch what the limits answer', {
  '': {
    usage: '--rate <req/s> --duration <s> [--tenants <n>] [--key <tg_…> | --keys-file <file>] [--query <graphql>]',
    summary: 'open loop: --rate requests per second for --duration seconds, round robin over the keys; a progress line per second',
    positionals: [],
    options: {
      rate: { type: 'string' },
      duration: { type: 'string' },
      tenants: { type: 'string' },
      key: { type: 'string' },
      'keys-file': { type: 'string' },
      query: { type: 'string' },
    },
    async run(context) {
      const { values, io } = context;
      const rate = intFlag(values, 'rate', { isRequired: true, min: 1 }) ?? 1;
      const durationS = intFlag(values, 'duration', { isRequired: true, min: 1 }) ?? 1;
      const keys = keysOf(values, io.env, intFlag(values, 'tenants', { isRequired: false, min: 1 }) ?? 1);
      const url = `${apiUrl({ url: values['url'] as string | undefined }, io.env)}/graphql`;
      const body = JSON.stringify({ query: (values['query'] as string | undefined) ?? DEFAULT_QUERY });
      const statuses = new Map<string, number>();
      const pending: Promise<void>[] = [];
      const send = async (key: string): Promise<void> => {
        let status: string;
        try {
          const response = await fetch(url, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
            body,
          });
          await response.arrayBuffer();
          status = String(response.status);
        } catch {
          status = 'failed';
        }
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      };
      const startedMs = performance.now();
      const total = rate * durationS;
      let nextProgress = 1;
      for (let index = 0; index < total; index += 1) {
        const dueMs = startedMs + (index * 1_000) / rate;
        const waitMs = dueMs - performance.now();
        if (waitMs > 0) await new Promise((resolveWait) => setTimeout(resolveWait, waitMs));
        pending.push(send(keys[index % keys.length] ?? ''));
        if (performance.now() - startedMs >= nextProgress * 1_000) {
          nextProgress += 1;
          if (!context.isJson)
            io.out(
              `${Math.round((performance.now() - startedMs) / 1_000)} s: sent ${index + 1}, ${[...statuses].map(([status, count]) => `${status}: ${count}`).join(', ')}`,
            );
        }
      }
      await Promise.all(pending);
      const elapsedS = (performance.now() - startedMs) / 1_000;
      const summary = {
        sent: total,
        seconds: Math.round(elapsedS * 10) / 10,
        keys: keys.length,
        statuses: Object.fromEntries([...statuses].sort()),
      };
      if (context.isJson) io.out(JSON.stringify(summary, null, 2));
      else
        io.out(
          table(
            [...statuses].sort().map(([status, count]) => ({ status, count, perSecond: Math.round(count / elapsedS) })),
            ['status', 'count', 'perSecond'],
          ),
        );
    },
  },
});
