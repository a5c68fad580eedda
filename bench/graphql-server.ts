/**
 * One server under test for `bench/graphql.ts`, in a process of its own so the
 * load generator does not share its event loop:
 *   tsx bench/graphql-server.ts <mode> <port> <redisPort>
 * Modes, all on the demo schema:
 * - `bare`: plain yoga, no pricing;
 * - `plain`: plain yoga pricing every request with graphql-query-complexity
 *   (`getComplexity` and the cost-directive estimator, no cache);
 * - `tollgate`: yoga + useTollgate (ResilientDecider on Redis, 2 limits);
 * - `envelop`: yoga + @envelop/rate-limiter with its Redis store on the same Redis.
 * Prints `ready` when listening; GET /cpu answers the process CPU time in µs.
 */
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RedisStore, useRateLimiter } from '@envelop/rate-limiter';
import { GraphQLError, type ExecutionArgs } from 'graphql';
import { createYoga, type Plugin } from 'graphql-yoga';
import { Redis } from 'ioredis';
import { FileSpool, ResilientDecider, connectDeciderRedis } from '../src/decider/index.js';
import { CostModel, InMemoryKeyStore, InMemoryPlanStore, engineCost, useTollgate } from '../src/graphql/index.js';
import { DemoStore, createDemoSchema } from '../src/graphql/demo/index.js';
import { createLogger, parseLimitId, parsePlanId, systemClock } from '../src/shared/index.js';
import { BENCH_API_KEY } from './graphql-shared.js';

const MONTH = { unit: 'month', anchorDay: 1, timeZone: 'UTC' } as const;

async function main(): Promise<void> {
  const [mode = 'bare', portText = '0', redisPortText = '6379'] = process.argv.slice(2);
  const store = new DemoStore();
  const schema = createDemoSchema({ store, version: 'bench', deciderTimeMs: () => Promise.resolve(0), clock: systemClock });
  const logger = createLogger({ level: 'silent', name: 'bench' });
  const plugins: Plugin[] = [];

  if (mode === 'plain') {
    const model = new CostModel(schema);
    plugins.push({
      onExecute: ({ args: untyped, setResultAndStopExecution }) => {
        const args = untyped as unknown as ExecutionArgs;
        const cost = engineCost({
          model,
          document: args.document,
          variables: args.variableValues ?? undefined,
          operationName: args.operationName ?? undefined,
        });
        if (cost > 10_000) setResultAndStopExecution({ errors: [new GraphQLError('too expensive')] });
      },
    });
  } else if (mode === 'tollgate') {
    const redis = await connectDeciderRedis({ url: `redis://127.0.0.1:${redisPortText}`, commandTimeoutMs: 1_000 });
    const decider = new ResilientDecider(redis, {
      shardCount: 256,
      clock: systemClock,
      logger,
      spool: new FileSpool(join(mkdtempSync(join(tmpdir(), 'tollgate-bench-spool-')), 'bench.spool')),
      breaker: { latencyBudgetMs: 1_000 },
    });
    const keyStore = new InMemoryKeyStore();
    keyStore.add({ tenant: 'bench', keyId: 'k1', planId: 'bench', key: BENCH_API_KEY });
    const plans = new InMemoryPlanStore([
      {
        id: parsePlanId('bench'),
        version: 1,
        billingPeriod: MONTH,
        maxCostPerOperation: 10_000,
        limits: [
          {
            id: parseLimitId('burst'),
            scope: 'apiKey',
            algorithm: { kind: 'token-bucket', capacity: 1_000_000_000, refillAmount: 1_000_000, refillPeriodMs: 1_000 },
            mode: 'hard',
            onDeciderDown: 'open',
          },
          {
            id: parseLimitId('month'),
            scope: 'tenant',
            algorithm: { kind: 'period-quota', limit: 1_000_000_000_000, period: MONTH, thresholdsPercent: [] },
            mode: 'hard',
            onDeciderDown: 'open',
          },
        ],
      },
    ]);
    plugins.push(useTollgate({ decider, keyStore, plans, logger }));
  } else if (mode === 'envelop') {
    const redis = new Redis({ port: Number(redisPortText) });
    plugins.push(
      useRateLimiter({
        identifyFn: (context) => String((context as { request?: Request }).request?.headers.get('authorization') ?? 'anonymous'),
        store: new RedisStore(redis),
        configByField: [{ type: 'Query', field: 'products', max: 1_000_000_000, window: '1s' }],
      }) as unknown as Plugin,
    );
  }

  const yoga = createYoga({ schema, plugins, logging: false, landingPage: false, maskedErrors: true });
  const server = createServer((request, response) => {
    if (request.url === '/cpu') {
      const usage = process.cpuUsage();
      response.end(String(usage.user + usage.system));
      return;
    }
    void yoga.requestListener(request, response);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolveListen) => server.listen(Number(portText), '127.0.0.1', resolveListen));
  process.stdout.write('ready\n');
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
  process.on('SIGINT', () => process.exit(0));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
