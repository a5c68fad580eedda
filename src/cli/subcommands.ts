/**
 * A command made of subcommands (`tollgate tenants create <id>`): each with its own flags (plus the
 * common ones), positional arguments and usage; `--help` at either level prints the usage.
 */
import { parseArgs } from 'node:util';
import { COMMON_OPTIONS, COMMON_USAGE, CliError, adminTarget, type AdminTarget } from './admin-client.js';
import type { CliIo, Command } from './command.js';

type OptionSpec = { type: 'string' | 'boolean'; short?: string; multiple?: boolean };

export interface SubcommandContext {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
  target: () => AdminTarget;
  io: CliIo;
  isJson: boolean;
}

export interface Subcommand {
  /** e.g. `create <id> [--plan <plan>]` */
  usage: string;
  summary: string;
  /** How many positionals it takes. */
  positionals: string[];
  options?: Record<string, OptionSpec>;
  run(context: SubcommandContext): Promise<void>;
}

function usageOf(name: string, summary: string, subcommands: Record<string, Subcommand>): string {
  return [
    `usage: tollgate ${name} <subcommand> [options]`,
    '',
    summary,
    '',
    ...Object.values(subcommands).map((sub) => `  tollgate ${name} ${sub.usage}\n      ${sub.summary}`),
    '',
    COMMON_USAGE,
  ].join('\n');
}

/** A `Command` dispatching to `subcommands` (a command with a single subcommand named '' takes no subcommand word). */
export function commandWithSubcommands(name: string, summary: string, subcommands: Record<string, Subcommand>): Command {
  const usage = usageOf(name, summary, subcommands);
  return {
    name,
    summary,
    async run(args: string[], io: CliIo): Promise<number> {
      const isBare = Object.keys(subcommands).length === 1 && '' in subcommands;
      const word = isBare ? '' : args[0];
      if (!isBare && (word === undefined || word === '--help' || word === '-h' || word === 'help')) {
        (word === undefined ? io.err : io.out)(usage);
        return word === undefined ? 2 : 0;
      }
      const sub = subcommands[word ?? ''];
      if (sub === undefined) {
        io.err(`tollgate ${name}: unknown subcommand '${word ?? ''}'\n\n${usage}`);
        return 2;
      }
      const label = isBare ? `tollgate ${name}` : `tollgate ${name} ${word ?? ''}`;
      let parsed;
      try {
        parsed = parseArgs({
          args: isBare ? args : args.slice(1),
          strict: true,
          allowPositionals: true,
          options: { ...COMMON_OPTIONS, ...sub.options },
        });
      } catch (error) {
        io.err(`${label}: ${error instanceof Error ? error.message : String(error)}\nusage: tollgate ${name} ${sub.usage}`);
        return 2;
      }
      const values = parsed.values as Record<string, string | boolean | undefined>;
      if (values['help'] === true) {
        io.out(`usage: tollgate ${name} ${sub.usage}\n\n${sub.summary}\n\n${COMMON_USAGE}`);
        return 0;
      }
      // `[<x>]` positionals are optional (they come last)
      const required = sub.positionals.filter((positional) => !positional.startsWith('[')).length;
      if (parsed.positionals.length < required || parsed.positionals.length > sub.positionals.length) {
        io.err(
          `${label}: expected ${sub.positionals.length === 0 ? 'no arguments' : sub.positionals.join(' ')}, got ${parsed.positionals.length}\nusage: tollgate ${name} ${sub.usage}`,
        );
        return 2;
      }
      const context: SubcommandContext = {
        values,
        positionals: parsed.positionals,
        target: () => adminTarget({ url: values['url'] as string | undefined, token: values['token'] as string | undefined }, io.env),
        io,
        isJson: values['json'] === true,
      };
      try {
        await sub.run(context);
        return 0;
      } catch (error) {
        if (!(error instanceof CliError)) throw error;
        io.err(`${label}: ${error.message}`);
        return error.exitCode;
      }
    },
  };
}

/** A required positive integer flag. @throws CliError (exit 2) */
export function intFlag(values: Record<string, unknown>, flag: string, options: { isRequired: boolean; min?: number }): number | undefined {
  const raw = values[flag];
  if (raw === undefined) {
    if (options.isRequired) throw new CliError(`--${flag} <n> is required`, 2);
    return undefined;
  }
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < (options.min ?? 0))
    throw new CliError(`--${flag} ${JSON.stringify(raw)}: must be an integer >= ${options.min ?? 0}`, 2);
  return value;
}
