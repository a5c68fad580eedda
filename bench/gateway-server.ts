/**
 * One server of `bench/gateway.ts`, in a process of its own:
 *   node bench/gateway-server.js <mode> <port> <redisPort> [<upstreamUrl>]
 * - `upstream`: the upstream, a plain yoga server of its own schema (no limits);
 * - `proxy`: a yoga gateway with the upstream's schema forwarding every operation to it, without limits
 *   (the same forwarding code as tollgate's gateway: the difference is tollgate in front);
 * - `tollgate`: `createGateway` with tollgate in front (ResilientDecider on Redis, 2 limits);
 * - `hive`, `hive-dedupe`: Hive Gateway (`@graphql-hive/gateway`, a devDependency) proxying to the upstream with its
 *   demand control, one upstream request per request / identical requests in flight coalesced (its default).
 * - `gw-bare`, `gw-memory`, `gw-redis`: tollgate's gateway with parts removed (`bench/gateway-variants.ts`).
 * With `BENCH_GATEWAY_MONITOR=1` (the accounting, `bench/gateway-accounting.ts`) the proxy and the variants stamp each
 * request's stages and keep the event-loop delay and GCs, answered by GET /stats.
 * Prints `ready` when listening; GET /cpu answers the process CPU time in µs.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createSchema, createYoga, type Plugin } from 'graphql-yoga';
import { createGateway, gatewayParts, upstreamSchemaFromSdl } from '../src/gateway/index.js';
import { COST_DIRECTIVES_SDL } from '../src/graphql/index.js';
import { GATEWAY_SDL } from './gateway-shared.js';
import { ProcessMonitor, VARIANTS, gatewayVariant, type Variant } from './gateway-variants.js';
import { benchTollgateOptions } from './tollgate-setup.js';

async function tollgate(redisPort: string, upstreamUrl: string): Promise<ReturnType<typeof createGateway>> {
  return createGateway({
    schema: upstreamSchemaFromSdl(GATEWAY_SDL),
    upstream: { url: upstreamUrl },
    tollgate: await benchTollgateOptions(redisPort),
  });
}

/**
 * Hive Gateway in proxy mode in front of the upstream, its demand control on (the same cost directives in the
 * schema it validates with; a maximum no bench query reaches, so every operation is priced and forwarded).
 * Its HTTP executor coalesces identical requests in flight into one upstream request unless told not to
 * (`deduplicateInflightRequests`): `hive` forwards each request (as tollgate and the plain proxy do),
 * `hive-dedupe` runs with the default.
 */
async function hiveGateway(
  upstreamUrl: string,
  isDeduplicating: boolean,
): Promise<(request: IncomingMessage, response: ServerResponse) => void> {
  const { createGatewayRuntime } = await import('@graphql-hive/gateway');
  const gateway = createGatewayRuntime({
    proxy: { endpoint: upstreamUrl, deduplicateInflightRequests: isDeduplicating },
    schema: `${COST_DIRECTIVES_SDL}\n${GATEWAY_SDL}`,
    demandControl: { maxCost: 1_000_000, includeExtensionMetadata: true },
    logging: false,
    landingPage: false,
    maskedErrors: true,
  });
  return (request, response) => void gateway(request, response);
}

async function main(): Promise<void> {
  const [mode = 'upstream', portText = '0', redisPort = '6379', upstreamUrl = ''] = process.argv.slice(2);
  let handler: (request: IncomingMessage, response: ServerResponse) => void;
  const monitor = process.env['BENCH_GATEWAY_MONITOR'] === '1' ? new ProcessMonitor() : undefined;
  if ((VARIANTS as readonly string[]).includes(mode)) {
    const yoga = await gatewayVariant(mode as Variant, { redisPort, upstreamUrl, monitor: monitor ?? new ProcessMonitor() });
    handler = (request, response) => void yoga.requestListener(request, response);
  } else if (mode === 'tollgate') {
    const yoga = await tollgate(redisPort, upstreamUrl);
    handler = (request, response) => void yoga.requestListener(request, response);
  } else if (mode === 'hive' || mode === 'hive-dedupe') {
    handler = await hiveGateway(upstreamUrl, mode === 'hive-dedupe');
  } else {
    const schema =
      mode === 'proxy'
        ? upstreamSchemaFromSdl(GATEWAY_SDL)
        : createSchema({
            typeDefs: [COST_DIRECTIVES_SDL, GATEWAY_SDL],
            resolvers: {
              Query: {
                books: (_: unknown, { first }: { first: number }) =>
                  Array.from({ length: first }, (_, index) => ({ title: `book ${index}`, author: { name: `author ${index}` } })),
              },
            },
          });
    const plugins = (mode === 'proxy' ? gatewayParts({ schema, upstream: { url: upstreamUrl } }).plugins : []) as Plugin[];
    if (mode === 'proxy' && monitor !== undefined) plugins.push(monitor.stages.plugin());
    const yoga = createYoga({ schema, plugins, logging: false, landingPage: false, maskedErrors: true });
    handler = (request, response) => void yoga.requestListener(request, response);
  }
  const server = createServer((request, response) => {
    if (request.url === '/cpu') {
      const usage = process.cpuUsage();
      response.end(String(usage.user + usage.system));
      return;
    }
    if (request.url === '/stats' && monitor !== undefined) {
      monitor.answer(response);
      return;
    }
    handler(request, response);
  });
  server.keepAliveTimeout = 60_000;
  if (monitor !== undefined) server.on('connection', () => (monitor.connections += 1));
  await new Promise<void>((resolveListen) => server.listen(Number(portText), '127.0.0.1', resolveListen));
  process.stdout.write('ready\n');
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
  process.on('SIGINT', () => process.exit(0));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
