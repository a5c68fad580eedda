/**
 * The API's GraphQL schema. For now it answers who is serving and what time
 * the decider's clock says; the demo catalog and the cost directives come
 * with the GraphQL hot path.
 */
import { createSchema } from 'graphql-yoga';
import { probeDecider, type DeciderRedis } from '../decider/index.js';

export interface SchemaDeps {
  redis: DeciderRedis;
  version: string;
}

const TYPE_DEFS = /* GraphQL */ `
  type Query {
    "Who is serving this request and the decider's clock."
    status: ServiceStatus!
  }

  type ServiceStatus {
    "tollgate version of this API instance."
    version: String!
    "Redis TIME (the decider's only clock) in ms since the epoch, as a decimal string."
    deciderTimeMs: String!
  }
`;

/** Builds the executable schema. */
export function createApiSchema(deps: SchemaDeps) {
  return createSchema({
    typeDefs: TYPE_DEFS,
    resolvers: {
      Query: {
        status: async () => {
          const { nowMs } = await probeDecider(deps.redis);
          return { version: deps.version, deciderTimeMs: String(nowMs) };
        },
      },
    },
  });
}
