/**
 * Where the tollgate gateway's time goes (issue 20), by A/B rather than by one process's profile: the plain proxy
 * and tollgate's gateway with parts removed (`bench/gateway-variants.ts`: no `useTollgate`; `useTollgate` over an
 * always-admitting in-memory decider; the whole thing on Redis), in front of the same upstream, in one run, rounds
 * interleaved. For each: requests per second (closed loop, autocannon, 16 connections) and the CPU each process
 * spent per request (the gateway, the upstream, Redis and the load generator: on 2 shared cores throughput follows
 * the total), GCs per request, the response's size; then at one fixed open-loop rate (half of the whole gateway's
 * throughput), the p50/p99 seen by the client beside the server's own view (stage times, event-loop delay, GC).
 * `BENCH_ONLY=gateway-accounting npm run bench`.
 */
import { readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import type { Redis } from 'ioredis';
import type { Figure } from './graphql.js';
import { BODY, CONNECTIONS, HEADERS, autocannon, buildServer, startServer, stopServer, type Mode } from './gateway.js';
import { STAGES, type ProcessStats } from './gateway-variants.js';
import { openLoop, pooledPercentiles, type OpenLoopResult } from './open-loop.js';

type Server = 'proxy' | 'gw-bare' | 'gw-bare-async-hooks' | 'gw-bare-answer' | 'gw-memory' | 'gw-memory-plain-answer' | 'gw-redis';
/** The servers compared (`BENCH_ACCOUNTING=proxy,gw-memory,…` to pick others). */
const SERVERS = (process.env['BENCH_ACCOUNTING'] ?? 'proxy,gw-bare,gw-memory,gw-redis').split(',') as Server[];
const LABELS: Record<Server, string> = {
  proxy: 'plain yoga proxy',
  'gw-bare': '(a) gateway without useTollgate',
  'gw-bare-async-hooks': "(a') as (a) with useTollgate's hooks, async and empty",
  'gw-bare-answer': "(a'') as (a) with tollgate's answer (extensions.cost, RateLimit headers)",
  'gw-memory': '(b) useTollgate, in-memory decider',
  'gw-memory-plain-answer': "(b') as (b), its answer undone (no extensions.cost, no RateLimit headers)",
  'gw-redis': '(c) the whole gateway (Redis)',
};
/** Closed-loop rounds, the servers in turn in each (medians reported: a neighbour's burst spoils one round, not the figure). */
const ROUNDS = 5;
/** Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const TICKS_PER_S = 100;

/** CPU µs a process has used, from /proc/<pid>/stat (utime + stime). */
function processCpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is the state (field 3); utime and stime are fields 14 and 15
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / TICKS_PER_S;
}

/**
 * Script calls (EVALSHA, EVAL, FCALL: what the decider sends) and their µs in Redis, from INFO commandstats
 * (the commands a script runs are counted apart, and their time is inside the script's).
 */
async function redisScriptCalls(admin: Redis): Promise<{ calls: number; usec: number }> {
  let calls = 0;
  let usec = 0;
  for (const match of (await admin.info('commandstats')).matchAll(/^cmdstat_(\w+):calls=(\d+),usec=(\d+)/gm)) {
    if (!['evalsha', 'eval', 'fcall', 'evalsha_ro', 'fcall_ro'].includes(match[1] ?? '')) continue;
    calls += Number(match[2]);
    usec += Number(match[3]);
  }
  return { calls, usec };
}

interface Pids {
  gateway: Record<Server, number>;
  upstream: number;
  upstreamPort: number;
  redis: number;
}

interface ClosedRun {
  perSecond: number;
  /** req/s ÷ the proxy's in the same round. */
  ratio: number;
  requests: number;
  /** CPU µs per request of each process. */
  cpu: { gateway: number; upstream: number; redis: number; client: number };
  gcPerRequest: number;
  gcMsPerRequest: number;
  /** Connections the upstream accepted during the run (the gateway's pool to it). */
  upstreamConnections: number;
  /** Script calls per request (one decides a batch of requests) and Redis' own µs per call. */
  redisCallsPerRequest: number;
  redisUsecPerCall: number;
}

async function stats(port: number): Promise<ProcessStats> {
  return (await (await fetch(`http://127.0.0.1:${port}/stats`)).json()) as ProcessStats;
}

/** One closed-loop run's length, s: the rounds share the phase length. */
const closedSeconds = (durationMs: number): number => Math.max(2, Math.round(durationMs / 2000));

async function closedRun(server: Server, port: number, pids: Pids, durationMs: number, admin: Redis): Promise<ClosedRun> {
  const url = `http://127.0.0.1:${port}/graphql`;
  const options = { url, method: 'POST', headers: HEADERS, body: BODY, connections: CONNECTIONS };
  await stats(port);
  await stats(pids.upstreamPort);
  const before = {
    gateway: processCpuMicros(pids.gateway[server]),
    upstream: processCpuMicros(pids.upstream),
    redis: processCpuMicros(pids.redis),
  };
  const commands = await redisScriptCalls(admin);
  const client = process.cpuUsage();
  const result = await autocannon({ ...options, duration: closedSeconds(durationMs) });
  const clientUsed = process.cpuUsage(client);
  const commandsAfter = await redisScriptCalls(admin);
  const calls = commandsAfter.calls - commands.calls;
  const after = stats(port);
  const n = Math.max(1, result.requests.total);
  if (result.non2xx + result.errors > 0) throw new Error(`${server}: ${result.non2xx + result.errors} failed requests`);
  const seen = await after;
  const upstreamSeen = await stats(pids.upstreamPort);
  return {
    perSecond: result.requests.average,
    ratio: 1,
    requests: n,
    cpu: {
      gateway: (processCpuMicros(pids.gateway[server]) - before.gateway) / n,
      upstream: (processCpuMicros(pids.upstream) - before.upstream) / n,
      redis: (processCpuMicros(pids.redis) - before.redis) / n,
      client: (clientUsed.user + clientUsed.system) / n,
    },
    gcPerRequest: seen.gcCount / n,
    gcMsPerRequest: seen.gcMs / n,
    upstreamConnections: upstreamSeen.connections,
    redisCallsPerRequest: calls / n,
    redisUsecPerCall: calls === 0 ? 0 : (commandsAfter.usec - commands.usec) / calls,
  };
}

/** What a server saw in its slices of open loop: stage means weighted by requests, worst loop delay, GCs summed. */
function mergeStats(slices: ProcessStats[]): ProcessStats {
  const requests = slices.reduce((sum, slice) => sum + slice.requests, 0);
  const weighted = (of: (slice: ProcessStats) => number): number =>
    requests === 0 ? 0 : slices.reduce((sum, slice) => sum + of(slice) * slice.requests, 0) / requests;
  const sum = (of: (slice: ProcessStats) => number): number => slices.reduce((total, slice) => total + of(slice), 0);
  const max = (of: (slice: ProcessStats) => number): number => Math.max(...slices.map(of));
  return {
    requests,
    stagesMs: Object.fromEntries(STAGES.map((stage) => [stage, weighted((slice) => slice.stagesMs[stage])])) as ProcessStats['stagesMs'],
    totalP50Ms: weighted((slice) => slice.totalP50Ms),
    totalP99Ms: weighted((slice) => slice.totalP99Ms),
    decisionP99Ms: weighted((slice) => slice.decisionP99Ms),
    forwardP99Ms: weighted((slice) => slice.forwardP99Ms),
    loopDelayP50Ms: weighted((slice) => slice.loopDelayP50Ms),
    loopDelayP99Ms: weighted((slice) => slice.loopDelayP99Ms),
    loopDelayMaxMs: max((slice) => slice.loopDelayMaxMs),
    gcCount: sum((slice) => slice.gcCount),
    gcMs: sum((slice) => slice.gcMs),
    gcOver5Ms: sum((slice) => slice.gcOver5Ms),
    cpuMicros: max((slice) => slice.cpuMicros),
    heapUsedMb: max((slice) => slice.heapUsedMb),
    connections: sum((slice) => slice.connections),
  };
}

interface FixedRate {
  p50Ms: number;
  p99Ms: number;
  server: ProcessStats;
  /** The latest the load generator sent a request after it was due, ms (its own lag, counted in the latencies). */
  sendLagMs: number;
}

/** Slices of open loop per server, the servers in turn (so all see the same spells of the neighbours' noise). */
const SLICES = 4;

/** Each server at `rate` in `SLICES` alternating slices of `fixedMs / 2`: pooled client latencies, merged server stats. */
async function fixedRates(ports: Record<Server, number>, rate: number, fixedMs: number): Promise<Record<Server, FixedRate>> {
  const runs = Object.fromEntries(SERVERS.map((server) => [server, [] as OpenLoopResult[]])) as Record<Server, OpenLoopResult[]>;
  const seen = Object.fromEntries(SERVERS.map((server) => [server, [] as ProcessStats[]])) as Record<Server, ProcessStats[]>;
  for (let slice = 0; slice < SLICES; slice += 1) {
    for (const server of SERVERS) {
      const port = ports[server];
      await stats(port);
      const run = await openLoop({ port, path: '/graphql', headers: HEADERS, body: BODY, ratePerS: rate, durationMs: fixedMs / 2 });
      seen[server].push(await stats(port));
      if (run.failures > 0) throw new Error(`${server}: ${run.failures} failed requests at ${rate} req/s`);
      runs[server].push(run);
    }
  }
  const fixed = {} as Record<Server, FixedRate>;
  for (const server of SERVERS) {
    const sendLagMs = Math.max(...runs[server].map((run) => run.maxSendLagMs));
    fixed[server] = { ...pooledPercentiles(runs[server]), server: mergeStats(seen[server]), sendLagMs };
  }
  return fixed;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
};

/** Each figure's median over the rounds. */
function medianRun(runs: ClosedRun[]): ClosedRun {
  const of = (pick: (run: ClosedRun) => number): number => median(runs.map(pick));
  return {
    perSecond: of((run) => run.perSecond),
    ratio: of((run) => run.ratio),
    requests: of((run) => run.requests),
    cpu: {
      gateway: of((run) => run.cpu.gateway),
      upstream: of((run) => run.cpu.upstream),
      redis: of((run) => run.cpu.redis),
      client: of((run) => run.cpu.client),
    },
    gcPerRequest: of((run) => run.gcPerRequest),
    gcMsPerRequest: of((run) => run.gcMsPerRequest),
    upstreamConnections: of((run) => run.upstreamConnections),
    redisCallsPerRequest: of((run) => run.redisCallsPerRequest),
    redisUsecPerCall: of((run) => run.redisUsecPerCall),
  };
}

/** Bytes of one answer: status line and headers as sent, and the body. */
async function answerSize(port: number): Promise<{ headers: number; body: number }> {
  const response = await fetch(`http://127.0.0.1:${port}/graphql`, { method: 'POST', headers: HEADERS, body: BODY });
  const body = await response.text();
  if (response.status !== 200 || !body.includes('"books"')) throw new Error(`answered ${response.status} ${body}`);
  let headers = 'HTTP/1.1 200 OK\r\n'.length + 2;
  response.headers.forEach((value, name) => (headers += name.length + value.length + 4));
  return { headers, body: Buffer.byteLength(body) };
}

const ms = (value: number): string => value.toFixed(2);

/** The accounting section. */
export async function benchGatewayAccounting(input: {
  redisPort: number;
  admin: Redis;
  durationMs: number;
}): Promise<{ lines: string[]; figures: Figure[] }> {
  const entry = buildServer();
  const redisPid = Number(/process_id:(\d+)/.exec(await input.admin.info('server'))?.[1]);
  const started: ChildProcess[] = [];
  const start = async (mode: Mode, args: string[]): Promise<{ child: ChildProcess; port: number }> => {
    const server = await startServer(entry, mode, args, { BENCH_GATEWAY_MONITOR: '1' });
    started.push(server.child);
    return server;
  };
  try {
    const upstream = await start('upstream', ['0']);
    const upstreamUrl = `http://127.0.0.1:${upstream.port}/graphql`;
    const ports = {} as Record<Server, number>;
    const pids = {
      gateway: {} as Record<Server, number>,
      upstream: upstream.child.pid as number,
      upstreamPort: upstream.port,
      redis: redisPid,
    };
    for (const server of SERVERS) {
      const child = await start(server, [String(input.redisPort), upstreamUrl]);
      ports[server] = child.port;
      pids.gateway[server] = child.child.pid as number;
    }
    const sizes = {} as Record<Server, { headers: number; body: number }>;
    for (const server of SERVERS) sizes[server] = await answerSize(ports[server]);
    for (const server of SERVERS) {
      const url = `http://127.0.0.1:${ports[server]}/graphql`;
      await autocannon({ url, method: 'POST', headers: HEADERS, body: BODY, connections: CONNECTIONS, duration: 2 });
    }
    const rounds = Object.fromEntries(SERVERS.map((server) => [server, [] as ClosedRun[]])) as Record<Server, ClosedRun[]>;
    for (let round = 0; round < ROUNDS; round += 1) {
      const proxyRun = await closedRun('proxy', ports.proxy, pids, input.durationMs, input.admin);
      rounds.proxy.push(proxyRun);
      for (const server of SERVERS.filter((name) => name !== 'proxy')) {
        const run = await closedRun(server, ports[server], pids, input.durationMs, input.admin);
        rounds[server].push({ ...run, ratio: run.perSecond / proxyRun.perSecond });
      }
    }
    const best = {} as Record<Server, ClosedRun>;
    for (const server of SERVERS) best[server] = medianRun(rounds[server]);
    const rate = Math.round(Math.min(...SERVERS.map((server) => best[server].perSecond)) / 2);
    const fixedMs = Math.max(4_000, input.durationMs / 2);
    const fixed = await fixedRates(ports, rate, fixedMs);
    return report({ best, fixed, sizes, rate, fixedMs, durationMs: input.durationMs });
  } finally {
    await Promise.all(started.map((child) => stopServer(child)));
  }
}

function report(input: {
  best: Record<Server, ClosedRun>;
  fixed: Record<Server, FixedRate>;
  sizes: Record<Server, { headers: number; body: number }>;
  rate: number;
  fixedMs: number;
  durationMs: number;
}): { lines: string[]; figures: Figure[] } {
  const { best, fixed, sizes, rate } = input;
  const total = (run: ClosedRun): number => run.cpu.gateway + run.cpu.upstream + run.cpu.redis + run.cpu.client;
  const figures: Figure[] = SERVERS.filter((server) => server !== 'proxy').map((server) => ({
    name: `gateway_accounting_${server.replace('gw-', '')}_vs_proxy`,
    value: best[server].ratio,
    unit: 'ratio',
    note: `${LABELS[server]} req/s ÷ plain proxy req/s in the same round, median of ${ROUNDS} rounds`,
  }));
  return {
    figures,
    lines: [
      '## Gateway accounting',
      '',
      `The plain proxy and tollgate's gateway with parts removed (\`bench/gateway-variants.ts\`), in front of one upstream, closed loop ${CONNECTIONS} connections, ${ROUNDS} rounds of ${closedSeconds(input.durationMs)} s per server, the servers in turn in each round after a 2 s warm-up of each; every figure is the median over the rounds, the ratio the median of each round's ratio to the proxy; CPU per request of each process from /proc (10 ms ticks) and \`process.cpuUsage\` (the load generator, autocannon, in the bench process).`,
      '',
      '| server | req/s | ÷ proxy | gateway µs/req | upstream | Redis | client | total µs/req | GCs /1k req | GC ms /1k req | answer bytes (headers + body) | upstream connections | script calls /req | Redis µs /script call |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...SERVERS.map((server) => {
        const run = best[server];
        return `| ${LABELS[server]} | ${run.perSecond.toFixed(0)} | ${run.ratio.toFixed(3)} | ${run.cpu.gateway.toFixed(0)} | ${run.cpu.upstream.toFixed(0)} | ${run.cpu.redis.toFixed(0)} | ${run.cpu.client.toFixed(0)} | ${total(run).toFixed(0)} | ${(run.gcPerRequest * 1000).toFixed(1)} | ${(run.gcMsPerRequest * 1000).toFixed(1)} | ${sizes[server].headers} + ${sizes[server].body} | ${run.upstreamConnections} | ${run.redisCallsPerRequest.toFixed(3)} | ${run.redisUsecPerCall.toFixed(1)} |`;
      }),
      '',
      `At ${rate} req/s open loop (half the slowest's throughput), the servers in turn, ${SLICES} slices of ${(input.fixedMs / 2000).toFixed(0)} s each: the client's p50/p99 (slices pooled), the server's own per-request time (onRequest → onResponse; slices' mean) and its mean stage times (ms), the event-loop delay (p99 slices' mean, max of all) and GCs (all slices).`,
      '',
      `| server | client p50 / p99 | server p50 / p99 | ${STAGES.join(' | ')} | decision p99 | forward p99 | loop delay p99 / max | GCs (> 5 ms) | generator's lag max |`,
      `| --- | ---: | ---: | ${STAGES.map(() => '---:').join(' | ')} | ---: | ---: | ---: | ---: | ---: |`,
      ...SERVERS.map((server) => {
        const { p50Ms, p99Ms, server: seen, sendLagMs } = fixed[server];
        return `| ${LABELS[server]} | ${ms(p50Ms)} / ${ms(p99Ms)} | ${ms(seen.totalP50Ms)} / ${ms(seen.totalP99Ms)} | ${STAGES.map((stage) => ms(seen.stagesMs[stage])).join(' | ')} | ${ms(seen.decisionP99Ms)} | ${ms(seen.forwardP99Ms)} | ${ms(seen.loopDelayP99Ms)} / ${ms(seen.loopDelayMaxMs)} | ${seen.gcCount} (${seen.gcOver5Ms}) | ${ms(sendLagMs)} |`;
      }),
      '',
    ],
  };
}
