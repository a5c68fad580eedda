/**
 * The tenant usage API on the tenant endpoint (same host and port as `/graphql`, same API keys):
 *   POST `/usage/graphql`                          GraphQL over `usage-schema.ts` (usage, usageSeries, statements, receipt)
 *   GET  `/usage/statements.csv|json?last=<1..24>`  the last closed periods' statements, to download
 * Answered in `onRequest`, before the metered pipeline: free (never reaches the decider, never
 * counted against a quota), in a path of its own, so it cannot be mixed with metered fields in one
 * operation and cannot collide with an upstream schema in gateway mode. Limited per key in this
 * process (429 `RATE_LIMITED`). The tenant is the key's: another tenant's ids answer like unknown ones.
 * Anonymous callers get 401 (the anonymous tenant is shared by every client address).
 */
import { graphql } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { DependencyError, systemClock, type Clock, type Logger } from '../../shared/index.js';
import { ApiKeyIdentifier } from '../identity/identify.js';
import { socketClientIp } from '../identity/client-address.js';
import type { KeyStore } from '../identity/key-store.js';
import { KeyRateLimiter } from '../local-limiter.js';
import { tenantPlanOf, type PlanStore } from '../plans.js';
import { tenantVisiblePlan } from './activity.js';
import { statementsCsv } from './statements-export.js';
import { MAX_STATEMENTS, USAGE_SCHEMA, statementView, usageRoot } from './usage-schema.js';
import type { UsageCaller, UsageService } from './usage-service.js';

export interface UsageApiOptions {
  service: UsageService;
  keyStore: KeyStore;
  plans: PlanStore;
  logger: Logger;
  /** @default systemClock */
  clock?: Clock;
  /** Usage API calls per second per API key in this process (burst twice that). @default 20 */
  callsPerSecondPerKey?: number;
  clientIp?: (request: Request, serverContext: Record<string, unknown>) => string | undefined;
  unknownKeysPerSecond?: number;
  /** Dashboard cookie auth (src/graphql/dashboard): the session's tenant when the request has its cookie and no key. */
  session?: (request: Request) => Promise<SessionIdentity | undefined>;
}

/** What the dashboard's session resolves a cookie request to: the key's identity, or a refusal like a key's. */
export type SessionIdentity =
  | Extract<Awaited<ReturnType<ApiKeyIdentifier['identify']>>, { isOk: true }>
  | { isOk: false; code: string; status: number; message: string; retryAfterMs?: number };

const PREFIX = '/usage/';
/** Largest request body, bytes. */
const MAX_BODY_BYTES = 16_384;

type Respond = (status: number, body: string, headers?: Record<string, string>) => void;

const errorBody = (code: string, message: string): string => JSON.stringify({ errors: [{ message, extensions: { code } }] });

/** Parses `{ query, variables, operationName }`; a string when the body is not one. */
async function readBody(
  request: Request,
): Promise<{ query: string; variables?: Record<string, unknown>; operationName?: string } | string> {
  const text = await request.text();
  if (Buffer.byteLength(text) > MAX_BODY_BYTES) return `the body is larger than ${MAX_BODY_BYTES} bytes`;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return 'the body is not JSON';
  }
  if (typeof body !== 'object' || body === null || typeof (body as { query?: unknown }).query !== 'string') {
    return 'the body must be {"query": "...", "variables": {...}}';
  }
  const { query, variables, operationName } = body as { query: string; variables?: unknown; operationName?: unknown };
  if (variables !== undefined && variables !== null && (typeof variables !== 'object' || Array.isArray(variables))) {
    return 'variables must be an object';
  }
  return {
    query,
    ...(variables === undefined || variables === null ? {} : { variables: variables as Record<string, unknown> }),
    ...(typeof operationName === 'string' ? { operationName } : {}),
  };
}

async function answerGraphQL(request: Request, caller: UsageCaller, options: UsageApiOptions, respond: Respond): Promise<void> {
  if (request.method !== 'POST') {
    respond(405, errorBody('METHOD_NOT_ALLOWED', 'use POST'), { Allow: 'POST' });
    return;
  }
  const body = await readBody(request);
  if (typeof body === 'string') {
    respond(400, errorBody('INVALID_INPUT', body));
    return;
  }
  const result = await graphql({
    schema: USAGE_SCHEMA,
    source: body.query,
    rootValue: usageRoot(options.service, caller),
    ...(body.variables === undefined ? {} : { variableValues: body.variables }),
    ...(body.operationName === undefined ? {} : { operationName: body.operationName }),
  });
  const errors = result.errors ?? [];
  // a request that did not validate has no data: 400; a dependency down: 503; else 200 (GraphQL over HTTP)
  const status =
    result.data === undefined
      ? 400
      : errors.some((error) => error.extensions['http'] !== undefined && error.extensions['code'] !== 'INVALID_INPUT')
        ? 503
        : 200;
  const masked = errors.map((error) => ({
    message: error.message,
    ...(error.path === undefined ? {} : { path: error.path }),
    extensions: { code: error.extensions['code'] ?? 'GRAPHQL_VALIDATION_FAILED' },
  }));
  respond(
    status,
    JSON.stringify({ ...(result.data === undefined ? {} : { data: result.data }), ...(masked.length > 0 ? { errors: masked } : {}) }),
  );
}

async function answerStatements(
  request: Request,
  url: URL,
  caller: UsageCaller,
  options: UsageApiOptions,
  respond: Respond,
): Promise<void> {
  const format = url.pathname === '/usage/statements.csv' ? 'csv' : url.pathname === '/usage/statements.json' ? 'json' : undefined;
  if (format === undefined) {
    respond(404, errorBody('NOT_FOUND', 'no such usage resource'));
    return;
  }
  if (request.method !== 'GET') {
    respond(405, errorBody('METHOD_NOT_ALLOWED', 'use GET'), { Allow: 'GET' });
    return;
  }
  const raw = url.searchParams.get('last') ?? '1';
  const last = /^[0-9]{1,2}$/.test(raw) ? Number(raw) : 0;
  if (last < 1 || last > MAX_STATEMENTS) {
    respond(400, errorBody('INVALID_INPUT', `last must be an integer in 1..${MAX_STATEMENTS}`));
    return;
  }
  const statements = await options.service.statements(caller, last);
  const disposition = { 'content-disposition': `attachment; filename="statements.${format}"` };
  if (format === 'json') respond(200, JSON.stringify({ statements: statements.map(statementView) }), disposition);
  else respond(200, statementsCsv(statements), { ...disposition, 'content-type': 'text/csv; charset=utf-8' });
}

export function useUsageApi(options: UsageApiOptions): Plugin {
  const clock = options.clock ?? systemClock;
  const identifier = new ApiKeyIdentifier({
    keyStore: options.keyStore,
    clock,
    ...(options.unknownKeysPerSecond === undefined ? {} : { unknownKeysPerSecond: options.unknownKeysPerSecond }),
  });
  const clientIpOf = options.clientIp ?? socketClientIp;
  const limiter = new KeyRateLimiter({ perSecond: options.callsPerSecondPerKey ?? 20, clock });
  return {
    onRequest: async (payload) => {
      const { request, url, fetchAPI, serverContext } = payload;
      if (!url.pathname.startsWith(PREFIX)) return;
      const respond: Respond = (status, body, headers = {}) =>
        payload.endResponse(new fetchAPI.Response(body, { status, headers: { 'content-type': 'application/json', ...headers } }));
      const identified =
        (await options.session?.(request)) ??
        (await identifier.identify(request.headers.get('authorization'), clientIpOf(request, serverContext)));
      if (!identified.isOk) {
        respond(identified.status, errorBody(identified.code, identified.message), {
          ...(identified.status === 401 ? { 'WWW-Authenticate': 'Bearer realm="tollgate"' } : {}),
          ...(identified.retryAfterMs === undefined
            ? {}
            : { 'Retry-After': String(Math.max(1, Math.ceil(identified.retryAfterMs / 1_000))) }),
        });
        return;
      }
      const { identity } = identified;
      // a running rollout's shadow limits are the operator's: the tenant reads its plan as if none ran
      const served = tenantPlanOf(options.plans, identity.planId, identity.tenant);
      const plan = served === undefined ? undefined : tenantVisiblePlan(served);
      if (plan === undefined) {
        respond(403, errorBody('PLAN_UNAVAILABLE', 'no plan is configured for this API key'));
        return;
      }
      const allowance = limiter.take(`${identity.tenant}\n${identity.keyId}`);
      if (!allowance.isAllowed) {
        const retryAfterS = Math.max(1, Math.ceil(allowance.retryAfterMs / 1_000));
        respond(429, errorBody('RATE_LIMITED', `too many usage calls with this key; retry in ${retryAfterS} s`), {
          'Retry-After': String(retryAfterS),
        });
        return;
      }
      const caller = { identity, plan };
      try {
        if (url.pathname === '/usage/graphql') await answerGraphQL(request, caller, options, respond);
        else await answerStatements(request, url, caller, options, respond);
      } catch (error) {
        if (!(error instanceof DependencyError)) throw error;
        options.logger.warn({ code: error.code, tenant: identity.tenant }, 'usage unavailable');
        respond(503, errorBody(error.code, 'usage is unavailable; retry later'), { 'Retry-After': '1' });
      }
    },
  };
}
