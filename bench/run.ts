/**
 * `npm run bench`: measures, in one run against one Redis of its own, each section (`SECTIONS`) and writes
 * `bench/results.json` and `BENCHMARKS.md` (machine, versions, date). The decider against its peers is
 * `bench/decider/`; the GraphQL hot path `bench/graphql.ts` on the same Redis; metering `bench/metering.ts`,
 * loaded at the GraphQL hot path's admitted rate; then the gateway, the spool and overload sections.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { REPO_ROOT, freePort, startRedis, stopProcess } from '../infra/services.js';
import { benchAdmin } from './admin.js';
import { benchDashboard } from './dashboard.js';
import { benchDecider } from './decider/index.js';
import { benchGraphql, type Figure } from './graphql.js';
import { benchGateway } from './gateway.js';
import { benchGatewayAccounting } from './gateway-accounting.js';
import { benchMetering } from './metering.js';
import { benchFleet } from './fleet.js';
import { benchOverload } from './overload.js';
import { benchSpool } from './spool.js';
import { benchUsage } from './usage.js';

/** Each phase's length (`BENCH_DURATION_MS`; bench/decider/load.ts reads the same variable). */
const DURATION_MS = Number(process.env['BENCH_DURATION_MS'] ?? 8_000);

/** What every section gets: the one Redis of this run (flushed before each section) and the phase length. */
export interface BenchContext {
  redisPort: number;
  admin: Redis;
  durationMs: number;
  /** Figures already measured in this run (earlier sections), or read from the last results.json when a section runs alone. */
  earlier: ReadonlyMap<string, number>;
}

export interface BenchSection {
  lines: string[];
  figures: Figure[];
}

/**
 * The sections, in run order. `BENCH_ONLY=name[,name]` runs just those: their figures and lines replace the
 * same section's in `bench/results.json`, every other section's stay as last measured (each keeps its own date).
 */
const SECTIONS: { name: string; run: (ctx: BenchContext) => Promise<BenchSection> }[] = [
  { name: 'decider', run: benchDecider },
  { name: 'graphql', run: async (ctx) => benchGraphql({ redisPort: ctx.redisPort, durationMs: ctx.durationMs }) },
  // the gateway (issue 20): tollgate's gateway vs a plain forwarding yoga gateway, same upstream, this Redis
  { name: 'gateway', run: async (ctx) => benchGateway({ redisPort: ctx.redisPort, durationMs: ctx.durationMs }) },
  // where the gateway's time goes (issue 20): the proxy beside the gateway with parts removed, CPU of every process
  { name: 'gateway-accounting', run: benchGatewayAccounting },
  {
    name: 'metering',
    // metering (issue: metering): its own Temporal and DynamoDB Local, this Redis, the GraphQL hot path's admitted rate as load
    run: async (ctx) =>
      benchMetering({
        redisPort: ctx.redisPort,
        durationMs: ctx.durationMs,
        loadPerSecond: Math.max(100, Math.round(ctx.earlier.get('graphql_admitted_per_second') ?? 1_000)),
      }),
  },
  // the pump fleet at 256 shards (issue 19): the worker entry point on its own Temporal and DynamoDB Local, this Redis
  { name: 'fleet', run: async (ctx) => benchFleet({ redisPort: ctx.redisPort }) },
  { name: 'spool', run: benchSpool },
  // overload (issue 14): the API process itself, on this Redis and DynamoDB Local of its own
  { name: 'overload', run: async (ctx) => benchOverload({ redisPort: ctx.redisPort, durationMs: ctx.durationMs }) },
  // admin (issue 17): a revocation or plan change through /admin/graphql until two API processes enforce it
  { name: 'admin', run: async (ctx) => benchAdmin({ redisPort: ctx.redisPort }) },
  // the tenant usage API and the what-if replay (issue 17): DynamoDB Local of its own, this Redis
  { name: 'usage', run: benchUsage },
  // the dashboard (issue 18): first-load JS, sign-in to cards filled in Chromium, the operator's first page of 100,000 tenants
  { name: 'dashboard', run: benchDashboard },
];

interface StoredSection extends BenchSection {
  date: string;
}

interface Results {
  date: string;
  machine: string;
  versions: string;
  figures: Figure[];
  sections?: Record<string, StoredSection>;
}

function readResults(): Results | undefined {
  try {
    return JSON.parse(readFileSync(join(REPO_ROOT, 'bench', 'results.json'), 'utf8')) as Results;
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  const only = (process.env['BENCH_ONLY'] ?? '').split(',').filter((name) => name !== '');
  for (const name of only) if (!SECTIONS.some((section) => section.name === name)) throw new Error(`BENCH_ONLY: no section ${name}`);
  const previous = readResults();
  const stored: Record<string, StoredSection> = only.length > 0 ? { ...(previous?.sections ?? {}) } : {};
  const earlier = new Map<string, number>((previous?.figures ?? []).map((figure) => [figure.name, figure.value]));
  const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-bench-'));
  const port = await freePort();
  const redisProc = await startRedis({ dataDir, port, appendfsync: 'everysec' });
  const admin = new Redis({ port });
  try {
    for (const section of SECTIONS) {
      if (only.length > 0 && !only.includes(section.name)) continue;
      await admin.flushall();
      console.log(`bench: ${section.name}`);
      const result = await section.run({ redisPort: port, admin, durationMs: DURATION_MS, earlier });
      for (const figure of result.figures) earlier.set(figure.name, figure.value);
      stored[section.name] = { date: new Date().toISOString(), lines: result.lines, figures: result.figures };
    }
  } finally {
    admin.disconnect();
    await stopProcess(redisProc);
    rmSync(dataDir, { recursive: true, force: true });
  }

  const pkg = (name: string): string =>
    (JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`;
  const date = new Date().toISOString();
  const versions = `Node ${process.versions.node}, ioredis ${pkg('ioredis')}, rate-limiter-flexible ${pkg('rate-limiter-flexible')}`;
  const ordered = SECTIONS.map((section) => [section.name, stored[section.name]] as const).filter(
    (entry): entry is readonly [string, StoredSection] => entry[1] !== undefined,
  );
  const figures = ordered.flatMap(([, section]) => section.figures);
  const results: Results = { date, machine, versions, figures, sections: Object.fromEntries(ordered) };
  writeFileSync(join(REPO_ROOT, 'bench', 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(
    join(REPO_ROOT, 'BENCHMARKS.md'),
    [
      '# Benchmarks',
      '',
      `Measured by \`npm run bench\` — ${machine}; ${versions}. Each section below gives the date it was measured`,
      '(`BENCH_ONLY=section npm run bench` measures one section again). The machine is shared and noisy: compare',
      'ratios measured side by side in one run, not absolute numbers across runs.',
      '',
      ...ordered.flatMap(([name, section]) => [
        `<!-- section ${name}, measured ${section.date} -->`,
        `_Measured ${section.date}._`,
        '',
        ...section.lines,
        '',
      ]),
      '## Figures (`bench/results.json`)',
      '',
      '| name | value | unit | note |',
      '| --- | ---: | --- | --- |',
      ...figures.map((figure) => `| \`${figure.name}\` | ${figure.value.toFixed(3)} | ${figure.unit} | ${figure.note} |`),
      '',
    ].join('\n'),
  );
  for (const figure of figures) console.log(`${figure.name.padEnd(36)} ${figure.value.toFixed(3)} ${figure.unit}  (${figure.note})`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
