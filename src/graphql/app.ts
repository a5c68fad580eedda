/**
 * The API as a fetch handler (graphql-yoga): `/graphql` (the surface's schema behind
 * `useTollgate`: the demo's, or an upstream's in gateway mode), `/health` (the process is alive), `/ready` (every dependency
 * answers a real call) and `/metrics` (Prometheus). The three probes answer
 * before identification and are never limited. Built from its dependencies so
 * tests can run it in-process with `yoga.fetch`.
 */
import { DescribeTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Connection } from '@temporalio/client';
import type { GraphQLSchema } from 'graphql';
import { createYoga, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import { probeDecider, type Decider, type DeciderRedis } from '../decider/index.js';
import { ledgerTableName } from '../metering/index.js';
import type { Logger } from '../shared/index.js';
import type { Deferrer } from '../jobs/index.js';
import type { ResponseStore } from './idempotency/response-store.js';
import type { AnonymousPolicy } from './identity/identify.js';
import type { KeyStore } from './identity/key-store.js';
import type { JobReader } from '../jobs/index.js';
import { TollgateMetrics } from './metrics.js';
import type { PlanStore } from './plans.js';
import { useJobStatus } from './plugins/use-job-status.js';
import { useMetricsEndpoint } from './plugins/use-metrics-endpoint.js';
import { useReadyEndpoint } from './plugins/request-path.js';
import { useTollgate, type TollgateContext, type TollgateOptions } from './plugins/use-tollgate.js';
import { runReadiness, type ReadinessCheck, type ReadinessReport } from './readiness.js';
import { useUsageApi, type UsageApiOptions } from './usage/use-usage-api.js';
import type { UsageService } from './usage/usage-service.js';

export interface ApiDeps {
  redis: DeciderRedis;
  dynamo: DynamoDBClient;
  tablePrefix: string;
  temporal: Connection;
  logger: Logger;
  version: string;
  /** Per-dependency budget of /ready, in ms. @default 1000 */
  readinessTimeoutMs?: number;
  /** Checks /ready runs besides Redis, DynamoDB and Temporal, and detail it reports (the spool). */
  readiness?: { checks?: ReadinessCheck[]; detail?: () => Record<string, unknown> };
  decider: Decider;
  keyStore: KeyStore;
  plans: PlanStore;
  deferrer?: Deferrer;
  /** First responses of Idempotency-Key requests, sent again to their retries. */
  responses?: ResponseStore;
  /** Deferred jobs' status: serves `GET /jobs/<id>` and the `job(id)` field. */
  jobs?: JobReader;
  /** `GET /jobs/<id>` reads per second per API key in this process. @default 10 */
  jobStatusPerSecond?: number;
  /** Unknown API keys per client address per second in this process, before uncached keys get 429. @default 5 */
  unknownKeysPerSecond?: number;
  anonymous?: AnonymousPolicy;
  /** @default a fresh registry */
  metrics?: TollgateMetrics;
  /** The tenant usage API (`/usage/graphql`, `/usage/statements.*`); absent: not served. */
  usage?: UsageService;
  /** Dashboard sessions as a usage API caller (cookie auth); absent: API keys only. */
  usageSession?: UsageApiOptions['session'];
  /** The schema served and how it executes: the demo's (`demoSurface`, demo mode only) or an upstream's (gateway mode). */
  surface: ApiSurface;
  /** Further `useTollgate` options (limits, cost model, client address, jitter). */
  tollgate?: Partial<
    Omit<TollgateOptions, 'decider' | 'keyStore' | 'plans' | 'logger' | 'metrics' | 'deferrer' | 'anonymous' | 'responses'>
  >;
}

/**
 * What `/graphql` serves: a schema, the plugins that execute it when the schema's resolvers do not (run after
 * `useTollgate`; gateway mode forwards), and further `/ready` checks.
 */
export interface ApiSurface {
  schema: GraphQLSchema;
  plugins: Plugin<TollgateContext>[];
  readiness: ReadinessCheck[];
}

export type ApiServer = YogaServerInstance<object, TollgateContext>;

/** The tenant usage API's plugin, when the deps have a usage service. */
function usagePlugins(deps: ApiDeps): Plugin<TollgateContext>[] {
  if (deps.usage === undefined) return [];
  return [
    useUsageApi({
      service: deps.usage,
      keyStore: deps.keyStore,
      plans: deps.plans,
      logger: deps.logger,
      ...(deps.usageSession === undefined ? {} : { session: deps.usageSession }),
      ...(deps.unknownKeysPerSecond === undefined ? {} : { unknownKeysPerSecond: deps.unknownKeysPerSecond }),
      ...(deps.tollgate?.clientIp === undefined ? {} : { clientIp: deps.tollgate.clientIp }),
      ...(deps.tollgate?.clock === undefined ? {} : { clock: deps.tollgate.clock }),
    }),
  ];
}

/** Creates the yoga instance serving the whole HTTP surface. */
export function createApi(deps: ApiDeps): ApiServer {
  const readinessTimeoutMs = deps.readinessTimeoutMs ?? 1_000;
  const metrics = deps.metrics ?? new TollgateMetrics();
  let round: Promise<ReadinessReport> | undefined;
  return createYoga<object, TollgateContext>({
    schema: deps.surface.schema,
    graphqlEndpoint: '/graphql',
    healthCheckEndpoint: '/health',
    landingPage: false,
    maskedErrors: true,
    batching: { limit: 100 },
    logging: {
      debug: (...args: unknown[]) => deps.logger.debug({ args }, 'yoga'),
      info: (...args: unknown[]) => deps.logger.info({ args }, 'yoga'),
      warn: (...args: unknown[]) => deps.logger.warn({ args }, 'yoga'),
      error: (...args: unknown[]) => deps.logger.error({ args }, 'yoga'),
    },
    plugins: [
      useReadyEndpoint({
        endpoint: '/ready',
        check: async ({ fetchAPI }) => {
          // probes arriving while a round of checks runs share it: a burst of probes is one round for the dependencies
          round ??= runReadiness(
            [
              { name: 'redis', run: async () => void (await probeDecider(deps.redis)) },
              {
                name: 'dynamodb',
                run: async () => void (await deps.dynamo.send(new DescribeTableCommand({ TableName: ledgerTableName(deps.tablePrefix) }))),
              },
              { name: 'temporal', run: async () => void (await deps.temporal.healthService.check({})) },
              ...(deps.readiness?.checks ?? []),
              ...deps.surface.readiness,
            ],
            readinessTimeoutMs,
            deps.readiness?.detail,
          ).finally(() => {
            round = undefined;
          });
          const report = await round;
          return new fetchAPI.Response(JSON.stringify(report), {
            status: report.isReady ? 200 : 503,
            headers: { 'content-type': 'application/json' },
          });
        },
      }),
      useMetricsEndpoint({ registry: metrics.registry }),
      ...(deps.jobs === undefined
        ? []
        : [
            useJobStatus({
              jobs: deps.jobs,
              keyStore: deps.keyStore,
              logger: deps.logger,
              ...(deps.jobStatusPerSecond === undefined ? {} : { readsPerSecondPerKey: deps.jobStatusPerSecond }),
              ...(deps.unknownKeysPerSecond === undefined ? {} : { unknownKeysPerSecond: deps.unknownKeysPerSecond }),
              ...(deps.tollgate?.clientIp === undefined ? {} : { clientIp: deps.tollgate.clientIp }),
            }),
          ]),
      ...usagePlugins(deps),
      useTollgate({
        ...(deps.unknownKeysPerSecond === undefined ? {} : { unknownKeysPerSecond: deps.unknownKeysPerSecond }),
        ...deps.tollgate,
        decider: deps.decider,
        keyStore: deps.keyStore,
        plans: deps.plans,
        logger: deps.logger,
        metrics,
        ...(deps.deferrer === undefined ? {} : { deferrer: deps.deferrer }),
        ...(deps.anonymous === undefined ? {} : { anonymous: deps.anonymous }),
        ...(deps.responses === undefined ? {} : { responses: deps.responses }),
      }),
      ...deps.surface.plugins,
    ],
  });
}
