/**
 * The `tollgate` command line (package.json `bin`, through `bin/tollgate.mjs`):
 * a dispatcher of commands, each in its own file. `tollgate <command> --help`
 * explains a command; an unknown command or bad arguments exit 2.
 *
 *   tollgate gateway --upstream <url> [--schema <file> | --introspect] [--costs <file>] [--port <n>]
 *   tollgate replay --tenant <id> --plan <file> --from <instant> --to <instant> [--json]
 *   tollgate tenants|keys|plans|accounts|corrections|audit-log|admin-tokens …   (the admin API, /admin/graphql)
 *   tollgate audit|quote|load …
 */
import { fileURLToPath } from 'node:url';
import { runApiProcess } from '../graphql/server.js';
import type { CliIo, Command } from './command.js';
import { accountsCommand, auditLogCommand, correctionsCommand } from './billing-commands.js';
import { gatewayCommand } from './gateway-command.js';
import { loadCommand } from './load-command.js';
import { plansCommand } from './plan-commands.js';
import { replayCommand } from './replay-command.js';
import { adminTokensCommand, keysCommand, tenantsCommand } from './tenant-commands.js';
import { auditCommand, quoteCommand } from './usage-commands.js';

/** Every command, by name. */
export const COMMANDS: readonly Command[] = [
  gatewayCommand,
  tenantsCommand,
  keysCommand,
  plansCommand,
  accountsCommand,
  correctionsCommand,
  auditLogCommand,
  adminTokensCommand,
  auditCommand,
  quoteCommand,
  loadCommand,
  replayCommand,
];

function usage(): string {
  const width = Math.max(...COMMANDS.map((command) => command.name.length));
  return [
    'usage: tollgate <command> [options]',
    '',
    'commands:',
    ...COMMANDS.map((command) => `  ${command.name.padEnd(width)}  ${command.summary}`),
    '',
    "run 'tollgate <command> --help' for a command's options",
  ].join('\n');
}

/** Runs `argv` (without node and the script); the exit code (see {@link Command.run}). */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? io.err : io.out)(usage());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS.find((candidate) => candidate.name === name);
  if (command === undefined) {
    io.err(`tollgate: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  try {
    return await command.run(args, io);
  } catch (error) {
    io.err(`tollgate ${name}: failed: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

const isEntryPoint = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isEntryPoint) await main();

/** The process entry: runs the CLI over `process.argv`, exits with its code unless a command keeps serving. */
export async function main(): Promise<void> {
  const code = await runCli(process.argv.slice(2), {
    out: (text) => console.log(text),
    err: (text) => console.error(text),
    env: process.env,
    runApiProcess,
    ...(process.stderr.isTTY
      ? { progress: (text: string) => void process.stderr.write(text === '' ? '\r\x1b[K' : `\r${text}\x1b[K`) }
      : {}),
  });
  if (code !== 0) process.exit(code);
}
