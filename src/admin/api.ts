/**
 * `/admin/graphql`: a yoga instance and schema of its own (never the tenant endpoint's). Every request
 * is authenticated before it is parsed: `Authorization: Bearer tga_<token>`, looked up by sha256 with a
 * consistent read (a revoked token is refused on its next call). Anonymous callers, tenant API keys,
 * unknown and revoked tokens all get the same 401 `ADMIN_UNAUTHENTICATED` (nothing tells them apart,
 * and no validation error shows them the schema).
 */
import { createSchema, createYoga, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import { DependencyError } from '../shared/index.js';
import { INSIGHTS_TYPE_DEFS, insightsResolvers } from './insights.js';
import { OPERATIONS_TYPE_DEFS, operationsResolvers } from './operations.js';
import { adminResolvers } from './resolvers.js';
import type { AdminContext, AdminDeps } from './support.js';
import type { AdminActor, AdminStore } from './ports.js';
import { hashAdminToken, isWellFormedAdminToken } from './tokens.js';
import { ADMIN_TYPE_DEFS } from './type-defs.js';

export const ADMIN_ENDPOINT = '/admin/graphql';

export type AdminApi = YogaServerInstance<object, AdminContext>;

const BEARER = /^Bearer +(\S+) *$/i;

const UNAUTHENTICATED = JSON.stringify({
  errors: [{ message: 'admin authentication failed', extensions: { code: 'ADMIN_UNAUTHENTICATED' } }],
});

/** The caller's token id, or null (any reason: the caller is told nothing more). @throws DependencyError */
export async function authenticateAdmin(store: AdminStore, authorization: string | null): Promise<AdminActor | null> {
  const token = BEARER.exec(authorization ?? '')?.[1];
  // a malformed token is still hashed and looked up, so its refusal costs what a well-formed one's does
  const hash = hashAdminToken(token ?? '');
  const record = await store.findToken(hash);
  if (token === undefined || !isWellFormedAdminToken(token) || record === undefined || record.isRevoked) return null;
  return { tokenId: record.tokenId };
}

function useAdminAuth(store: AdminStore, actors: WeakMap<Request, AdminActor>, sessionActor: AdminDeps['sessionActor']): Plugin {
  return {
    async onRequest(payload) {
      const { request, fetchAPI } = payload;
      const endResponse = (response: Response): void => payload.endResponse(response);
      let actor: AdminActor | null;
      try {
        // the dashboard's session cookie (a request without Authorization), else the bearer token
        const fromSession = await sessionActor?.(request);
        actor = fromSession !== undefined ? fromSession : await authenticateAdmin(store, request.headers.get('authorization'));
      } catch (error) {
        if (!(error instanceof DependencyError)) throw error;
        const body = JSON.stringify({
          errors: [{ message: 'admin tokens cannot be checked right now; retry later', extensions: { code: error.code } }],
        });
        endResponse(new fetchAPI.Response(body, { status: 503, headers: { 'content-type': 'application/json', 'retry-after': '1' } }));
        return;
      }
      if (actor === null) {
        endResponse(
          new fetchAPI.Response(UNAUTHENTICATED, {
            status: 401,
            headers: { 'content-type': 'application/json', 'www-authenticate': 'Bearer realm="tollgate-admin"' },
          }),
        );
        return;
      }
      actors.set(request, actor);
    },
  };
}

/** The admin API over its dependencies. */
export function createAdminApi(deps: AdminDeps): AdminApi {
  const actors = new WeakMap<Request, AdminActor>();
  return createYoga<object, AdminContext>({
    schema: createSchema<AdminContext>({
      typeDefs: [ADMIN_TYPE_DEFS, OPERATIONS_TYPE_DEFS, INSIGHTS_TYPE_DEFS],
      resolvers: [adminResolvers(deps), operationsResolvers(deps.operations, () => deps.clock.nowMs()), insightsResolvers(deps)],
    }),
    graphqlEndpoint: ADMIN_ENDPOINT,
    landingPage: false,
    graphiql: false,
    maskedErrors: true,
    batching: false,
    context: ({ request }): AdminContext => {
      const actor = actors.get(request);
      // unreachable: useAdminAuth ends every request it did not authenticate
      if (actor === undefined) throw new Error('unauthenticated admin request reached execution');
      return { actor };
    },
    logging: {
      debug: (...args: unknown[]) => deps.logger.debug({ args }, 'admin yoga'),
      info: (...args: unknown[]) => deps.logger.info({ args }, 'admin yoga'),
      warn: (...args: unknown[]) => deps.logger.warn({ args }, 'admin yoga'),
      error: (...args: unknown[]) => deps.logger.error({ args }, 'admin yoga'),
    },
    plugins: [useAdminAuth(deps.store, actors, deps.sessionActor)],
  });
}
