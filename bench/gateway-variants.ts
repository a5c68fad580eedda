/**
 * Bench-only variants of tollgate's gateway, for accounting where its time goes (`bench/gateway-accounting.ts`).
 * Each is `createGateway`'s composition (`src/gateway/gateway.ts`: the ready endpoint, `useTollgate`, the forward
 * to the upstream) with one part removed:
 * - `gw-bare`: no `useTollgate` at all, the rest as `createGateway` builds it;
 * - `gw-bare-async-hooks`, `gw-bare-answer`: `gw-bare` with only `useTollgate`'s hooks, async and empty, or only its
 *   answer's size (`extensions.cost`, RateLimit headers);
 * - `gw-memory`: `useTollgate` over an in-memory decider that admits everything (no Redis);
 * - `gw-memory-plain-answer`: the same, its answer undone (no `extensions.cost`, no RateLimit headers);
 * - `gw-redis`: the whole thing (`useTollgate` over the ResilientDecider on Redis).
 * Every variant, and the plain proxy in accounting mode, carries a last plugin that stamps each request's stages
 * (`StageClock`), and the process keeps its event-loop delay and its GCs; `GET /stats` answers them and starts
 * afresh.
 */
import { PerformanceObserver, monitorEventLoopDelay } from 'node:perf_hooks';
import type { ServerResponse } from 'node:http';
import type { ExecutionArgs, ExecutionResult } from 'graphql';
import { createYoga, type Plugin } from 'graphql-yoga';
import type { DecideInput, Decider, Decision, LimitState, SettleInput, SettleResult } from '../src/decider/index.js';
import { gatewayParts, upstreamSchemaFromSdl } from '../src/gateway/index.js';
import { useReadyEndpoint, useTollgate, type TollgateContext, type TollgateOptions } from '../src/graphql/index.js';
import { GATEWAY_SDL } from './gateway-shared.js';
import { benchTollgateOptions } from './tollgate-setup.js';

export type Variant = 'gw-bare' | 'gw-bare-async-hooks' | 'gw-bare-answer' | 'gw-memory' | 'gw-memory-plain-answer' | 'gw-redis';
export const VARIANTS: readonly Variant[] = [
  'gw-bare',
  'gw-bare-async-hooks',
  'gw-bare-answer',
  'gw-memory',
  'gw-memory-plain-answer',
  'gw-redis',
];

/** The hooks `useTollgate` uses, each async and doing nothing (bench only: what the promise chains alone cost). */
function asyncHooks(): Plugin<TollgateContext> {
  return {
    onRequestParse: async () => {
      await Promise.resolve();
      return { onRequestParseDone: () => undefined };
    },
    onParams: () => undefined,
    onContextBuilding: () => undefined,
    onExecute: async () => {
      await Promise.resolve();
      return {
        onExecuteDone: async () => {
          await Promise.resolve();
        },
      };
    },
    onResponse: () => undefined,
  };
}

/** tollgate's answer on the plain gateway (bench only: what its size alone costs): `extensions.cost` and two headers as (c) sends them. */
function tollgateSizedAnswer(): Plugin<TollgateContext> {
  const cost = {
    requested: 30,
    actual: 30,
    refunded: 0,
    throttleStatus: { maximumAvailable: 1_000_000_000, currentlyAvailable: 999_999_970, restoreRate: 1_000_000 },
    limits: [
      { id: 'burst', mode: 'hard', remaining: 999_999_970, resetMs: 1, isExceeded: false },
      { id: 'month', mode: 'hard', remaining: 999_999_999_970, resetMs: 2_211_218_896, isExceeded: false },
    ],
  };
  return {
    onExecute: () => ({
      onExecuteDone: ({ result, setResult }) => {
        if (Symbol.asyncIterator in result) return;
        setResult({ ...result, extensions: { ...result.extensions, cost: { ...cost, receipt: `r-${crypto.randomUUID()}` } } });
      },
    }),
    onResponse: ({ response }) => {
      response.headers.set('RateLimit-Policy', '"burst";q=1000000000;w=1000, "month";q=1000000000000;w=2678400');
      response.headers.set('RateLimit', '"burst";r=999999970;t=1, "month";r=999999999970;t=2211219');
    },
  };
}

/**
 * `useTollgate`'s answer undone (bench only, to price it): the result sent as the upstream's data alone (no
 * `extensions.cost`) and `useTollgate`'s `onResponse` (the RateLimit headers) dropped.
 */
function plainAnswer(tollgate: Plugin<TollgateContext>): Plugin<TollgateContext>[] {
  const { onResponse: _dropped, ...rest } = tollgate;
  const strip: Plugin<TollgateContext> = {
    onExecute: () => ({
      onExecuteDone: ({ result, setResult }) => {
        if (!(Symbol.asyncIterator in result)) setResult({ data: result.data ?? null });
      },
    }),
  };
  return [rest, strip];
}

/** Admits every operation at once, with the limits' state a real decision would carry; settles nothing. */
export class AlwaysAdmitDecider implements Decider {
  decide(input: DecideInput): Promise<Decision> {
    const limits: LimitState[] = input.limits.map((limit) => ({
      id: limit.id,
      kind: limit.algorithm.kind,
      mode: limit.mode,
      remaining: 1_000_000,
      resetMs: 1_000,
      isExceeded: false,
      hasTaken: true,
      overage: 0,
    }));
    return Promise.resolve({
      kind: 'allowed',
      usageId: input.requestId,
      streamId: '0-1',
      nowMs: Date.now(),
      limits,
      shadowDenials: [],
      isReplay: false,
    });
  }

  settle(input: SettleInput): Promise<SettleResult> {
    return Promise.resolve({ status: 'settled', nowMs: Date.now(), streamId: '0-2', refund: input.cost - input.actual });
  }
}

/** Stage names, in the order a request passes them. */
export const STAGES = ['toParse', 'toContext', 'toForward', 'forward', 'toResponse'] as const;
type Stage = (typeof STAGES)[number];

/** Sums of each stage's time over the requests seen, and the worst request's total. */
class StageClock {
  private readonly started = new WeakMap<Request, number[]>();
  sums: Record<Stage, number> = { toParse: 0, toContext: 0, toForward: 0, forward: 0, toResponse: 0 };
  count = 0;
  totals: number[] = [];
  /** Each request's `toForward` (pricing and the decision) and `forward` (the upstream) times, ms. */
  decisions: number[] = [];
  forwards: number[] = [];

  /** The last plugin: its hooks run after every other plugin's of the same hook. */
  plugin(): Plugin {
    const mark = (request: Request, index: number): void => {
      const marks = this.started.get(request);
      if (marks !== undefined) marks[index] = performance.now();
    };
    return {
      onRequest: ({ request }) => {
        this.started.set(request, [performance.now()]);
      },
      onParse: ({ context }) => mark((context as { request: Request }).request, 1),
      onContextBuilding: ({ context }) => mark(context.request, 2),
      onExecute: ({ args, executeFn, setExecuteFn }) => {
        const request = (args.contextValue as { request: Request }).request;
        mark(request, 3);
        setExecuteFn(async (executeArgs: ExecutionArgs) => {
          const result = (await executeFn(executeArgs)) as ExecutionResult;
          mark(request, 4);
          return result;
        });
      },
      onResponse: ({ request }) => {
        const marks = this.started.get(request);
        if (marks === undefined || marks.length < 5) return;
        const end = performance.now();
        const [t0, t1, t2, t3, t4] = marks as [number, number, number, number, number];
        this.sums.toParse += t1 - t0;
        this.sums.toContext += t2 - t1;
        this.sums.toForward += t3 - t2;
        this.sums.forward += t4 - t3;
        this.sums.toResponse += end - t4;
        this.totals.push(end - t0);
        this.decisions.push(t3 - t2);
        this.forwards.push(t4 - t3);
        this.count += 1;
      },
    };
  }

  reset(): void {
    this.sums = { toParse: 0, toContext: 0, toForward: 0, forward: 0, toResponse: 0 };
    this.count = 0;
    this.totals = [];
    this.decisions = [];
    this.forwards = [];
  }
}

/** What `GET /stats` answers. */
export interface ProcessStats {
  requests: number;
  /** Mean ms per request of each stage. */
  stagesMs: Record<Stage, number>;
  /** Per-request total (onRequest → onResponse), ms. */
  totalP50Ms: number;
  totalP99Ms: number;
  /** p99 of `toForward` (pricing and the decision) and of `forward` (the upstream), ms. */
  decisionP99Ms: number;
  forwardP99Ms: number;
  loopDelayP50Ms: number;
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
  gcCount: number;
  gcMs: number;
  /** GC pauses longer than 5 ms. */
  gcOver5Ms: number;
  cpuMicros: number;
  heapUsedMb: number;
  /** TCP connections accepted by this process's server. */
  connections: number;
}

/** The event-loop delay, GCs and stages of this process since the last `/stats`. */
export class ProcessMonitor {
  readonly stages = new StageClock();
  private readonly loop = monitorEventLoopDelay({ resolution: 1 });
  private gc = { count: 0, ms: 0, over5: 0 };
  /** Counted by the server (`server.on('connection')`). */
  connections = 0;

  constructor() {
    this.loop.enable();
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        this.gc.count += 1;
        this.gc.ms += entry.duration;
        if (entry.duration > 5) this.gc.over5 += 1;
      }
    }).observe({ entryTypes: ['gc'] });
  }

  /** Answers the stats and starts afresh. */
  answer(response: ServerResponse): void {
    const { stages, loop, gc } = this;
    const p99 = (values: number[]): number => {
      const sorted = [...values].sort((a, b) => a - b);
      return sorted[Math.min(sorted.length - 1, Math.floor(0.99 * sorted.length))] ?? 0;
    };
    const totals = [...stages.totals].sort((a, b) => a - b);
    const at = (p: number): number => totals[Math.min(totals.length - 1, Math.floor(p * totals.length))] ?? 0;
    const per = (sum: number): number => (stages.count === 0 ? 0 : sum / stages.count);
    const usage = process.cpuUsage();
    const stats: ProcessStats = {
      requests: stages.count,
      stagesMs: Object.fromEntries(STAGES.map((stage) => [stage, per(stages.sums[stage])])) as Record<Stage, number>,
      totalP50Ms: at(0.5),
      totalP99Ms: at(0.99),
      decisionP99Ms: p99(stages.decisions),
      forwardP99Ms: p99(stages.forwards),
      loopDelayP50Ms: loop.percentile(50) / 1e6,
      loopDelayP99Ms: loop.percentile(99) / 1e6,
      loopDelayMaxMs: loop.max / 1e6,
      gcCount: gc.count,
      gcMs: gc.ms,
      gcOver5Ms: gc.over5,
      cpuMicros: usage.user + usage.system,
      heapUsedMb: process.memoryUsage().heapUsed / 2 ** 20,
      connections: this.connections,
    };
    this.connections = 0;
    stages.reset();
    loop.reset();
    this.gc = { count: 0, ms: 0, over5: 0 };
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify(stats));
  }
}

/** `createGateway`'s composition with the variant's part removed, and the stage clock last. */
export async function gatewayVariant(
  variant: Variant,
  input: { redisPort: string; upstreamUrl: string; monitor: ProcessMonitor },
): Promise<ReturnType<typeof createYoga<object, TollgateContext>>> {
  const schema = upstreamSchemaFromSdl(GATEWAY_SDL);
  const parts = gatewayParts({ schema, upstream: { url: input.upstreamUrl } });
  const ready = useReadyEndpoint({ endpoint: '/ready', check: () => true });
  let tollgate: Plugin<TollgateContext>[] = [];
  if (variant === 'gw-bare-async-hooks') tollgate = [asyncHooks()];
  else if (variant === 'gw-bare-answer') tollgate = [tollgateSizedAnswer()];
  else if (variant !== 'gw-bare') {
    const options: TollgateOptions = await benchTollgateOptions(input.redisPort);
    const plugin = useTollgate(variant === 'gw-redis' ? options : { ...options, decider: new AlwaysAdmitDecider() });
    tollgate = variant === 'gw-memory-plain-answer' ? plainAnswer(plugin) : [plugin];
  }
  return createYoga<object, TollgateContext>({
    schema,
    graphqlEndpoint: '/graphql',
    healthCheckEndpoint: '/health',
    landingPage: false,
    maskedErrors: true,
    plugins: [ready, ...tollgate, ...parts.plugins, input.monitor.stages.plugin()],
  });
}
