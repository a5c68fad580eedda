/**
 * `tollgate replay`: what-if. Re-runs a tenant's recorded usage (its ledger entries between two
 * instants) against a proposed plan with the decider's TypeScript model, and reports what that plan
 * would have denied, deferred, warned or billed differently, per UTC day and per limit
 * (`src/billing/replay.ts`, which also says what the ledger lets a replay know). Reads only.
 * DynamoDB comes from the environment, as for `npm start`.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DynamoAccountStore, replayUsage, type RecordedEntry, type ReplayResult } from '../billing/index.js';
import { periodAt, type PeriodSpec } from '../decider/index.js';
import { parsePlan, planForTenant } from '../graphql/index.js';
import { DynamoUsageReader, createDynamoClient } from '../metering/index.js';
import { ValidationError, loadConfig, parseTenantId, type TenantId } from '../shared/index.js';
import type { CliIo, Command } from './command.js';
import { progressOf } from './progress.js';

const USAGE = `usage: tollgate replay --tenant <id> --plan <plan.json> --from <ISO instant> --to <ISO instant> [--json]

What-if: re-runs the tenant's recorded usage in [from, to) (its ledger entries) against the proposed plan with
the decider's model, and reports per UTC day and per limit the requests that plan would have denied, deferred
or warned, and the units it would have billed beside those recorded. At most 366 days.

  --tenant <id>      the tenant whose usage is replayed
  --plan <file>      the proposed plan, JSON (the shape the config table stores: id, version, limits, billingPeriod, ...)
  --from, --to       ISO-8601 instants, from < to
  --json             the whole report as JSON (per day, per limit, totals)
  -h, --help         this text

DynamoDB comes from the environment (DYNAMODB_ENDPOINT, DYNAMODB_TABLE_PREFIX, ...), as for \`npm start\`.`;

const MAX_RANGE_MS = 366 * 86_400_000;

interface ReplayArgs {
  tenant: TenantId;
  planFile: string;
  fromMs: number;
  toMs: number;
  isJson: boolean;
}

/** The arguments, or their problems (exit 2). */
export function replayArgs(args: string[]): ReplayArgs | { help: true } | { problems: string[] } {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        tenant: { type: 'string' },
        plan: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (error) {
    return { problems: [error instanceof Error ? error.message : String(error)] };
  }
  if (values['help'] === true) return { help: true };
  const problems: string[] = [];
  const text = (name: string): string => (typeof values[name] === 'string' ? values[name] : '');
  for (const name of ['tenant', 'plan', 'from', 'to']) if (text(name) === '') problems.push(`--${name} is required`);
  let tenant = '' as TenantId;
  try {
    if (text('tenant') !== '') tenant = parseTenantId(text('tenant'));
  } catch {
    problems.push(`--tenant ${JSON.stringify(text('tenant'))} is not a tenant id`);
  }
  const fromMs = Date.parse(text('from'));
  const toMs = Date.parse(text('to'));
  if (text('from') !== '' && Number.isNaN(fromMs)) problems.push(`--from ${JSON.stringify(text('from'))} is not an ISO-8601 instant`);
  if (text('to') !== '' && Number.isNaN(toMs)) problems.push(`--to ${JSON.stringify(text('to'))} is not an ISO-8601 instant`);
  if (!Number.isNaN(fromMs) && !Number.isNaN(toMs) && fromMs >= toMs) problems.push('--from must be before --to');
  if (toMs - fromMs > MAX_RANGE_MS) problems.push('a replay covers at most 366 days');
  if (problems.length > 0) return { problems };
  return { tenant, planFile: text('plan'), fromMs, toMs, isJson: values['json'] === true };
}

/** The starts (ISO) of the billing periods [fromMs, toMs) touches: the ledger partitions to read. */
function periodStarts(spec: PeriodSpec, fromMs: number, toMs: number): string[] {
  const starts: string[] = [];
  for (let period = periodAt(spec, fromMs); period.startMs < toMs; period = periodAt(spec, period.endMs)) {
    starts.push(new Date(period.startMs).toISOString());
  }
  return starts;
}

/** A readable report: the totals, then one line per day and limit with anything to say. */
export function formatReplay(result: ReplayResult): string {
  const { totals } = result;
  const lines = [
    `requests ${totals.requests}  denied ${totals.denied}  deferred ${totals.deferred}  warned ${totals.warned}`,
    `units recorded ${totals.recordedUnits}  under the proposed plan ${totals.replayedUnits}  difference ${totals.replayedUnits - totals.recordedUnits}`,
    '',
    `${'day'.padEnd(10)}  ${'limit'.padEnd(24)}  ${'denied'.padStart(8)}  ${'deferred'.padStart(8)}  ${'warned'.padStart(8)}`,
  ];
  for (const day of result.days) {
    for (const [limitId, counts] of Object.entries(day.limits)) {
      if (counts.denied + counts.deferred + counts.warned === 0) continue;
      lines.push(
        `${day.day}  ${limitId.padEnd(24)}  ${String(counts.denied).padStart(8)}  ${String(counts.deferred).padStart(8)}  ${String(counts.warned).padStart(8)}`,
      );
    }
    if (day.replayedUnits !== day.recordedUnits)
      lines.push(`${day.day}  billed ${day.replayedUnits} units instead of ${day.recordedUnits}`);
  }
  return lines.join('\n');
}

/**
 * The replay's progress bar: the ledger read period by period, then the entries replayed. Shown only on a terminal
 * (`io.progress`, set by the entry when stderr is a TTY) and never with --json.
 */
export function replayProgress(
  io: CliIo,
  isJson: boolean,
): { reading: (done: number, total: number) => void; replaying: (done: number, total: number) => void; clear: () => void } {
  const shown: CliIo = isJson ? { out: io.out, err: io.err, env: io.env, runApiProcess: io.runApiProcess } : io;
  return {
    reading: (done, total) => progressOf(shown, total, 'billing periods read').step(done),
    replaying: (done, total) => progressOf(shown, total, 'entries replayed').step(done),
    clear: () => progressOf(shown, 0, '').clear(),
  };
}

async function replay(parsed: ReplayArgs, io: CliIo): Promise<ReplayResult> {
  const proposed = parsePlan(JSON.parse(readFileSync(parsed.planFile, 'utf8')) as unknown);
  const config = loadConfig(io.env);
  const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
  const progress = replayProgress(io, parsed.isJson);
  try {
    const account = await new DynamoAccountStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix }).get(parsed.tenant);
    // the plan in the tenant's own calendar, as the API decides its requests
    const plan = planForTenant(proposed, account?.billingPeriod);
    const reader = new DynamoUsageReader(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
    const starts = periodStarts(plan.billingPeriod, parsed.fromMs, parsed.toMs);
    let entries: RecordedEntry[] = [];
    // one billing period at a time, oldest first: the bar moves while a year of ledger is read
    for (const [index, periodStart] of starts.entries()) {
      progress.reading(index, starts.length);
      const range = { tenant: parsed.tenant, fromMs: parsed.fromMs, toMs: parsed.toMs };
      entries = entries.concat(await reader.entriesBetween({ ...range, periodStarts: [periodStart] }));
    }
    // a late entry lands in a later period's partition: then the whole range is read again in one time-ordered list
    if (entries.some((entry, index) => index > 0 && (entries[index - 1]?.atMs ?? 0) > entry.atMs)) {
      entries = await reader.entriesBetween({ tenant: parsed.tenant, periodStarts: starts, fromMs: parsed.fromMs, toMs: parsed.toMs });
    }
    const result = replayUsage({
      tenant: parsed.tenant,
      limits: plan.limits,
      billingPeriod: plan.billingPeriod,
      ...(plan.subShards === undefined ? {} : { subShards: plan.subShards }),
      entries,
      shouldKeepRequests: false,
      onProgress: (done) => progress.replaying(done, entries.length),
    });
    return result;
  } finally {
    progress.clear();
    dynamo.destroy();
  }
}

export const replayCommand: Command = {
  name: 'replay',
  summary: "what-if: a tenant's recorded usage against a proposed plan",
  async run(args: string[], io: CliIo): Promise<number> {
    const parsed = replayArgs(args);
    if ('help' in parsed) {
      io.out(USAGE);
      return 0;
    }
    if ('problems' in parsed) {
      io.err(`tollgate replay: ${parsed.problems.join('\ntollgate replay: ')}\nrun 'tollgate replay --help' for the options`);
      return 2;
    }
    let result: ReplayResult;
    try {
      result = await replay(parsed, io);
    } catch (error) {
      if (error instanceof ValidationError || error instanceof SyntaxError || (error as { code?: unknown }).code === 'ENOENT') {
        io.err(`tollgate replay: ${error instanceof Error ? error.message : String(error)}`);
        return 2;
      }
      throw error;
    }
    io.out(parsed.isJson ? JSON.stringify({ days: result.days, totals: result.totals }, null, 2) : formatReplay(result));
    return 0;
  },
};
