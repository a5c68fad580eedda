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
import { createServer } from 'node:http';
import { RedisStore, useRateLimiter } from '@envelop/rate-limiter';
import { GraphQLError, type ExecutionArgs } from 'graphql';
import { createYoga, type Plugin } from 'graphql-yoga';
import { Redis } from 'ioredis';
import { CostModel, engineCost, useTollgate } from '../src/graphql/index.js';
import { DemoStore, createDemoSchema } from '../src/graphql/demo/index.js';
import { systemClock } from '../src/shared/index.js';
import { benchTollgateOptions } from './tollgate-setup.js';

async function main(): Promise<void> {
  const [mode = 'bare', portText = '0', redisPortText = '6379'] = process.argv.slice(2);
  const store = new DemoStore();
  const schema = createDemoSchema({ store, version: 'bench', deciderTimeMs: () => Promise.resolve(0), clock: systemClock });
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
    plugins.push(useTollgate(await benchTollgateOptions(redisPortText)));
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
