/**
 * The API as a fetch handler (graphql-yoga): `/graphql`, `/health` (the
 * process is alive) and `/ready` (every dependency answers). Built from its
 * dependencies so tests can run it in-process with `yoga.fetch`.
 */
import { DescribeTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Connection } from '@temporalio/client';
import { createYoga, useReadinessCheck, type YogaServerInstance } from 'graphql-yoga';
import { probeDecider, type DeciderRedis } from '../decider/index.js';
import { ledgerTableName } from '../metering/index.js';
import type { Logger } from '../shared/index.js';
import { runReadiness } from './readiness.js';
import { createApiSchema } from './schema.js';

export interface ApiDeps {
  redis: DeciderRedis;
  dynamo: DynamoDBClient;
  tablePrefix: string;
  temporal: Connection;
  logger: Logger;
  version: string;
  /** Per-dependency budget of /ready, in ms. @default 1000 */
  readinessTimeoutMs?: number;
}

export type ApiServer = YogaServerInstance<object, object>;

/** Creates the yoga instance serving the whole HTTP surface. */
export function createApi(deps: ApiDeps): ApiServer {
  const readinessTimeoutMs = deps.readinessTimeoutMs ?? 1_000;
  return createYoga<object, object>({
    schema: createApiSchema({ redis: deps.redis, version: deps.version }),
    graphqlEndpoint: '/graphql',
    healthCheckEndpoint: '/health',
    landingPage: false,
    maskedErrors: true,
    logging: {
      debug: (...args: unknown[]) => deps.logger.debug({ args }, 'yoga'),
      info: (...args: unknown[]) => deps.logger.info({ args }, 'yoga'),
      warn: (...args: unknown[]) => deps.logger.warn({ args }, 'yoga'),
      error: (...args: unknown[]) => deps.logger.error({ args }, 'yoga'),
    },
    plugins: [
      useReadinessCheck({
        endpoint: '/ready',
        check: async ({ fetchAPI }) => {
          const report = await runReadiness(
            [
              { name: 'redis', run: async () => void (await probeDecider(deps.redis)) },
              {
                name: 'dynamodb',
                run: async () =>
                  void (await deps.dynamo.send(new DescribeTableCommand({ TableName: ledgerTableName(deps.tablePrefix) }))),
              },
              { name: 'temporal', run: async () => void (await deps.temporal.healthService.check({})) },
            ],
            readinessTimeoutMs,
          );
          return new fetchAPI.Response(JSON.stringify(report), {
            status: report.isReady ? 200 : 503,
            headers: { 'content-type': 'application/json' },
          });
        },
      }),
    ],
  });
}
