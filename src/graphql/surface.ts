/**
 * What the API process serves at `/graphql`: the demo schema, or, in gateway
 * mode (`TOLLGATE_UPSTREAM`), an upstream GraphQL server's schema whose
 * operations are forwarded to it. Everything else of the process is the same
 * in both: identity, admission control, the body cap, pricing and decisions,
 * settlement, usage events, metrics, readiness, the deferred jobs' lane.
 *
 * The one file of `src/graphql` that imports `src/gateway` (see
 * .dependency-cruiser.cjs): the gateway is built on the edge's plugin, and the
 * process chooses between the two surfaces here. The demo is imported only in
 * demo mode, dynamically: the published package runs gateway mode without it.
 */
import type { ExecutionArgs, ExecutionResult, GraphQLSchema } from 'graphql';
import { gatewayFromConfig } from '../gateway/index.js';
import type { AppConfig, Logger } from '../shared/index.js';
import type { ApiSurface } from './app.js';
import type * as DemoIndex from './demo/index.js';
import type { TollgateOptions } from './plugins/use-tollgate.js';

/** The demo's module, loaded only in demo mode (the published package does not ship it). */
export type DemoModule = typeof DemoIndex;

/** The surface the process serves. */
export type ProcessSurface =
  | { kind: 'demo'; demo: DemoModule }
  | {
      kind: 'gateway';
      upstreamUrl: string;
      api: ApiSurface;
      /** `useTollgate` options of gateway mode (how failures are charged). */
      tollgate: Pick<TollgateOptions, 'keepsReservation'>;
      /** Deferred jobs run against this schema, forwarded by `execute`. */
      jobs: { schema: GraphQLSchema; execute: (args: ExecutionArgs) => Promise<ExecutionResult> };
    };

/** The upstream URL without credentials, for logs and banners. */
export function redactedUpstream(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

/**
 * The surface `config` asks for.
 * @throws ValidationError `CONFIG_INVALID` listing every problem of the gateway's schema file and cost file
 * @throws DependencyError `UPSTREAM_UNAVAILABLE` when the schema must be introspected and the upstream does not answer
 */
export async function chooseSurface({ config, logger }: { config: AppConfig; logger: Logger }): Promise<ProcessSurface> {
  const gateway = config.gateway;
  if (gateway === undefined) return { kind: 'demo', demo: await import('./demo/index.js') };
  const parts = await gatewayFromConfig(gateway, logger);
  logger.info(
    {
      upstream: redactedUpstream(gateway.upstreamUrl),
      schema: gateway.schemaFile ?? 'introspected',
      costs: gateway.costsFile ?? 'none',
      failureCharge: gateway.failureCharge,
    },
    'gateway mode: forwarding admitted operations to the upstream',
  );
  return {
    kind: 'gateway',
    upstreamUrl: gateway.upstreamUrl,
    api: {
      schema: parts.schema,
      plugins: parts.plugins,
      readiness: [
        {
          name: 'upstream',
          run: async () => {
            const check = await parts.checkUpstream();
            if (check.isReady) return;
            throw Object.assign(new Error(check.code), check.code === 'UPSTREAM_SCHEMA_DRIFT' ? check : { code: check.code });
          },
        },
      ],
    },
    tollgate: parts.keepsReservation === undefined ? {} : { keepsReservation: parts.keepsReservation },
    jobs: { schema: parts.schema, execute: parts.execute },
  };
}
