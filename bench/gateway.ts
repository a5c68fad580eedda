/**
 * The gateway benchmark (issue 20): one upstream (a plain yoga server in its
 * own process) and one query, served through
 * - `proxy`: a yoga gateway forwarding to the upstream without limits (the same forwarding code);
 * - `tollgate`: tollgate's gateway (identity, pricing, a real Redis decision, settlement, usage event);
 * - `hive`: Hive Gateway (`@graphql-hive/gateway`) proxying to the upstream with its demand control.
 * Each gateway in its own process, driven by autocannon closed-loop for
 * throughput (interleaved rounds, the better kept), then by an open-loop
 * client at one fixed rate, half of tollgate's throughput, for p99 (`bench/open-loop.ts`).
 * Figures: `gateway_vs_plain_proxy` (throughput ratio, target ≥ 0.9),
 * `gateway_added_p99_ms` (p99 at that same rate, tollgate − proxy; target ≤ 2)
 * and `gateway_vs_hive_gateway` (throughput ratio, target ≥ 1.0).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { REPO_ROOT, freePort } from '../infra/services.js';
import type { Figure } from './graphql.js';
import { BENCH_API_KEY } from './graphql-shared.js';
import { GATEWAY_QUERY } from './gateway-shared.js';
import type { Variant } from './gateway-variants.js';
import { openLoop, pooledPercentiles, type OpenLoopResult } from './open-loop.js';
import { countingAofRewrites, withoutAofRewrites } from './decider/load.js';

export type Mode = 'upstream' | 'proxy' | 'tollgate' | 'hive' | 'hive-dedupe' | Variant;
type Gateway = 'proxy' | 'tollgate' | 'hive' | 'hive-dedupe';

export interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
}
type Autocannon = (options: Record<string, unknown>) => Promise<AutocannonResult>;
const require = createRequire(import.meta.url);
export const autocannon = require('autocannon') as Autocannon;

export const BODY = JSON.stringify({ query: GATEWAY_QUERY });
export const HEADERS = { 'content-type': 'application/json', authorization: `Bearer ${BENCH_API_KEY}` };
export const CONNECTIONS = 16;
const HIVE_VERSION = (require('@graphql-hive/gateway/package.json') as { version: string }).version;
/** Closed-loop rounds, the gateways in turn in each: figures are medians over the rounds, ratios of the same round. */
const ROUNDS = 4;

/** Compiles the servers (tsconfig.bench.json), as production runs them. */
export function buildServer(): string {
  execFileSync(
    process.execPath,
    [join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(REPO_ROOT, 'tsconfig.bench.json')],
    { cwd: REPO_ROOT, stdio: 'inherit' },
  );
  cpSync(join(REPO_ROOT, 'lua'), join(REPO_ROOT, '.data', 'bench-build', 'lua'), { recursive: true });
  return join(REPO_ROOT, '.data', 'bench-build', 'bench', 'gateway-server.js');
}

export async function startServer(
  entry: string,
  mode: Mode,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const child = spawn(process.execPath, [entry, mode, String(port), ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, NODE_ENV: 'production', ...env },
  });
  let seen = '';
  await new Promise<void>((resolveReady, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      seen += chunk.toString('utf8');
      if (seen.includes('ready')) resolveReady();
    });
    child.once('exit', (code) => reject(new Error(`bench gateway server ${mode} exited with ${String(code)}`)));
  });
  return { child, port };
}

export async function stopServer(child: ChildProcess): Promise<void> {
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

/** Slices of open loop per gateway: proxy and tollgate alternate, so both see the same spells of noise. */
const SLICES = 4;

/**
 * Open loop at `ratePerS` against each gateway in `ports`, in `SLICES` alternating slices of `durationMs / 2`
 * each (the machine is shared: neighbours' bursts land on both alike), the latencies of each gateway's slices pooled.
 */
async function fixedRates(ports: readonly number[], ratePerS: number, durationMs: number): Promise<{ p50Ms: number; p99Ms: number }[]> {
  const runs: OpenLoopResult[][] = ports.map(() => []);
  for (let slice = 0; slice < SLICES; slice += 1) {
    for (const [index, port] of ports.entries()) {
      const run = await openLoop({ port, path: '/graphql', headers: HEADERS, body: BODY, ratePerS, durationMs: durationMs / 2 });
      if (run.failures > 0) throw new Error(`open loop at ${ratePerS} req/s: ${run.failures} failed requests`);
      runs[index]?.push(run);
    }
  }
  return runs.map((pooled) => pooledPercentiles(pooled));
}

/** One request through `mode`, which must answer the query's data (not only a 200). */
async function expectAnswer(mode: Gateway, port: number): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${port}/graphql`, { method: 'POST', headers: HEADERS, body: BODY });
  const body = (await response.json()) as { data?: { books?: unknown[] }; errors?: unknown };
  if (response.status !== 200 || body.data?.books?.length !== 10)
    throw new Error(`${mode} answered ${response.status} ${JSON.stringify(body)}`);
}

interface Run {
  perSecond: number;
  p99Ms: number;
  failures: number;
}

/** One closed-loop run's length, s (the rounds share the phase length). */
const roundSeconds = (durationMs: number): number => Math.max(2, Math.round(durationMs / 2000));

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? Number.NaN) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

async function closedLoop(port: number, durationMs: number): Promise<Run> {
  const url = `http://127.0.0.1:${port}/graphql`;
  const result = await autocannon({
    url,
    method: 'POST',
    headers: HEADERS,
    body: BODY,
    connections: CONNECTIONS,
    duration: roundSeconds(durationMs),
  });
  return { perSecond: result.requests.average, p99Ms: result.latency.p99, failures: result.non2xx + result.errors };
}

/** The gateway section: tollgate's gateway against a plain forwarding gateway, in front of the same upstream. */
export async function benchGateway(input: { redisPort: number; durationMs: number }): Promise<{ lines: string[]; figures: Figure[] }> {
  const entry = buildServer();
  const started: ChildProcess[] = [];
  const admin = new Redis({ port: input.redisPort });
  const start = async (mode: Mode, args: string[]): Promise<{ child: ChildProcess; port: number }> => {
    const server = await startServer(entry, mode, args);
    started.push(server.child);
    return server;
  };
  try {
    const upstream = await start('upstream', ['0']);
    const upstreamUrl = `http://127.0.0.1:${upstream.port}/graphql`;
    const servers: Record<Gateway, { port: number }> = {
      proxy: await start('proxy', ['0', upstreamUrl]),
      tollgate: await start('tollgate', [String(input.redisPort), upstreamUrl]),
      hive: await start('hive', ['0', upstreamUrl]),
      'hive-dedupe': await start('hive-dedupe', ['0', upstreamUrl]),
    };
    const gateways = ['proxy', 'tollgate', 'hive', 'hive-dedupe'] as const;
    for (const mode of gateways) await expectAnswer(mode, servers[mode].port);
    for (const mode of gateways) {
      const url = `http://127.0.0.1:${servers[mode].port}/graphql`;
      await autocannon({ url, method: 'POST', headers: HEADERS, body: BODY, connections: CONNECTIONS, duration: 2 });
    }
    const rounds: Record<Gateway, Run[]> = { proxy: [], tollgate: [], hive: [], 'hive-dedupe': [] };
    for (let round = 0; round < ROUNDS; round += 1) {
      for (const mode of gateways) {
        const run = await closedLoop(servers[mode].port, input.durationMs);
        if (run.failures > 0) throw new Error(`${mode}: ${run.failures} failed requests`);
        rounds[mode].push(run);
      }
    }
    const medianRun = (mode: Gateway): Run => ({
      perSecond: median(rounds[mode].map((run) => run.perSecond)),
      p99Ms: median(rounds[mode].map((run) => run.p99Ms)),
      failures: 0,
    });
    /** The median over the rounds of `of`'s req/s ÷ `to`'s in the same round. */
    const ratioOf = (of: Gateway, to: Gateway): number =>
      median(rounds[of].map((run, round) => run.perSecond / (rounds[to][round]?.perSecond ?? Number.NaN)));
    const proxy = medianRun('proxy');
    const tollgate = medianRun('tollgate');
    const hive = medianRun('hive');
    const hiveDedupe = medianRun('hive-dedupe');
    // one open-loop rate for both, half what the slower of the two (tollgate) sustains: the p99s compare the same
    // load, which neither gateway is near its capacity at
    const rate = Math.round(Math.min(proxy.perSecond, tollgate.perSecond) / 2);
    const fixedMs = Math.max(4_000, input.durationMs / 2);
    // twice: as Redis runs (an AOF rewrite in the window stalls tollgate's decisions and not the proxy: counted), then
    // with no rewrite in it (bench/decider/load.ts); gateway_added_p99_ms is the second
    type Fixed = [{ p50Ms: number; p99Ms: number }, { p50Ms: number; p99Ms: number }];
    const ports = [servers.proxy.port, servers.tollgate.port];
    const asIs = await countingAofRewrites(admin, async () => (await fixedRates(ports, rate, fixedMs)) as Fixed);
    const [proxyFixed, tollgateFixed] = await withoutAofRewrites(admin, async () => (await fixedRates(ports, rate, fixedMs)) as Fixed);
    const asIsNote = `as Redis runs (automatic AOF rewrites on): tollgate ${asIs.result[1].p99Ms.toFixed(2)} − proxy ${asIs.result[0].p99Ms.toFixed(2)} ms with ${asIs.rewrites} rewrites in the window`;
    const ratio = ratioOf('tollgate', 'proxy');
    const hiveRatio = ratioOf('tollgate', 'hive');
    const addedP99 = tollgateFixed.p99Ms - proxyFixed.p99Ms;
    const note = `query ${GATEWAY_QUERY} (30 units, nothing to settle), ${CONNECTIONS} connections`;
    return {
      figures: [
        {
          name: 'gateway_vs_plain_proxy',
          value: ratio,
          unit: 'ratio',
          note: `tollgate gateway req/s ÷ plain forwarding yoga req/s in the same round, median of ${ROUNDS} rounds; ${note}; target ≥ 0.9`,
        },
        {
          name: 'gateway_added_p99_ms',
          value: addedP99,
          unit: 'ms',
          note: `p99 at ${rate} req/s open loop (half of tollgate's throughput; latency from each request's due time), tollgate ${tollgateFixed.p99Ms.toFixed(2)} − plain proxy ${proxyFixed.p99Ms.toFixed(2)} ms; p50 ${tollgateFixed.p50Ms.toFixed(2)} vs ${proxyFixed.p50Ms.toFixed(2)} ms; no AOF rewrite in the window (${asIsNote}); target ≤ 2`,
        },
        {
          name: 'gateway_vs_hive_gateway',
          value: hiveRatio,
          unit: 'ratio',
          note: `tollgate gateway req/s ÷ Hive Gateway (proxy mode, demand control on, one upstream request per request) req/s; ${note}; target ≥ 1.0`,
        },
        { name: 'gateway_per_second', value: tollgate.perSecond, unit: 'req/s', note: `tollgate gateway, closed loop; ${note}` },
      ],
      lines: [
        '## Gateway',
        '',
        `One upstream (plain yoga, its own process) and one query (\`${GATEWAY_QUERY}\`, 30 units, every list full so nothing to settle); each gateway in its own Node process (compiled), autocannon with ${CONNECTIONS} connections, a 2 s warm-up each, then ${ROUNDS} rounds of ${roundSeconds(input.durationMs)} s per gateway, the gateways in turn in each round (req/s and p99: medians over the rounds; ratios: the median of each round's ratio, both gateways measured minutes apart at most, so a neighbour's burst spoils one round rather than the figure); then ${rate} req/s (half of tollgate's throughput, the slower of the two) open loop, proxy and tollgate in ${SLICES} alternating slices of ${(fixedMs / 2000).toFixed(0)} s each (both see the same spells of the neighbours' noise; each one's slices pooled): requests go out at their due times whatever the answers do, and each latency counts from its due time (\`bench/open-loop.ts\`). Upstream, gateways, Redis and the load generator share the same 2 cores. tollgate's gateway here is \`createGateway\` over Redis (in-memory keys and plans), not the whole API process (no DynamoDB/Temporal needed on the request path).`,
        '',
        'Every client sends the same query, so Hive Gateway with its default (`deduplicateInflightRequests`) answers up to 16 requests with one upstream request; `gateway_vs_hive_gateway` compares with it forwarding every request, as tollgate (which meters each request) and the plain proxy do.',
        '',
        '| gateway | req/s | p99 closed loop (ms) | p50 / p99 at fixed rate (ms) |',
        '| --- | ---: | ---: | ---: |',
        `| plain yoga proxy (no limits) | ${proxy.perSecond.toFixed(0)} | ${proxy.p99Ms.toFixed(1)} | ${proxyFixed.p50Ms.toFixed(2)} / ${proxyFixed.p99Ms.toFixed(2)} |`,
        `| tollgate gateway | ${tollgate.perSecond.toFixed(0)} | ${tollgate.p99Ms.toFixed(1)} | ${tollgateFixed.p50Ms.toFixed(2)} / ${tollgateFixed.p99Ms.toFixed(2)} |`,
        `| Hive Gateway ${HIVE_VERSION} (proxy, demand control) | ${hive.perSecond.toFixed(0)} | ${hive.p99Ms.toFixed(1)} | – |`,
        `| Hive Gateway, identical requests in flight coalesced (its default) | ${hiveDedupe.perSecond.toFixed(0)} | ${hiveDedupe.p99Ms.toFixed(1)} | – |`,
        '',
        `gateway_vs_plain_proxy **${ratio.toFixed(3)}** (target ≥ 0.9); gateway_added_p99_ms **${addedP99.toFixed(2)}** (target ≤ 2); gateway_vs_hive_gateway **${hiveRatio.toFixed(3)}** (target ≥ 1.0).`,
        '',
      ],
    };
  } finally {
    await Promise.all(started.map((child) => stopServer(child)));
    admin.disconnect();
  }
}
