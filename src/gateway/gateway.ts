/**
 * Gateway mode: a yoga server whose schema is the upstream's and whose
 * execution forwards each admitted operation to the upstream, with every
 * tollgate behaviour in front (`useTollgate`: identity, guards, pricing, the
 * decision, 429/202/warnings, the actual cost measured on the upstream's
 * response, settlement, usage events). Costs come from the IBM cost
 * directives in the upstream's SDL.
 */
import {
  DirectiveLocation,
  GraphQLSchema,
  Kind,
  OperationTypeNode,
  type DocumentNode,
  type ExecutionResult,
  buildClientSchema,
  findBreakingChanges,
  buildSchema,
  getIntrospectionQuery,
  getOperationAST,
  parse,
  visit,
  type ExecutionArgs,
  type IntrospectionQuery,
} from 'graphql';
import { createYoga, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import { COST_DIRECTIVES_SDL, useReadyEndpoint, useTollgate, type TollgateContext, type TollgateOptions } from '../graphql/index.js';
import { DependencyError, ValidationError } from '../shared/index.js';
import { Upstream, type ForwardInput, type UpstreamOptions } from './upstream.js';

export interface GatewayOptions {
  /** The upstream's schema, with its cost directives (`upstreamSchemaFromSdl`). */
  schema: GraphQLSchema;
  upstream: UpstreamOptions;
  /** Everything `useTollgate` takes: the decider, keys, plans, logger, and the rest of its options. */
  tollgate: TollgateOptions;
  /** Request headers that carry the caller's tenant and key ids upstream (none unless named). */
  identityHeaders?: { tenant?: string; keyId?: string };
  /**
   * What an operation the upstream failed (timeout, unreachable, 5xx) is charged: its minimum cost, or the
   * whole cost reserved before forwarding. @default 'minimum'
   */
  failureCharge?: 'minimum' | 'reserved';
  /** How long `/ready` reuses its last check of the upstream's schema, ms. @default 5000 */
  readyCacheMs?: number;
}

export type GatewayServer = YogaServerInstance<object, TollgateContext>;

/**
 * The upstream's schema from its SDL. The cost directives are declared when the
 * SDL does not declare them itself.
 * @throws ValidationError `INVALID_INPUT` when the SDL does not parse or does not build a schema
 */
export function upstreamSchemaFromSdl(sdl: string): GraphQLSchema {
  try {
    const declaresCost = parse(sdl).definitions.some(
      (definition) => definition.kind === Kind.DIRECTIVE_DEFINITION && definition.name.value === 'cost',
    );
    return buildSchema(declaresCost ? sdl : `${COST_DIRECTIVES_SDL}\n${sdl}`);
  } catch (error) {
    throw new ValidationError(
      'INVALID_INPUT',
      `the upstream schema does not build: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

/**
 * The upstream's schema by introspection. Introspection does not carry directive
 * uses, so every field is priced by the cost model's defaults.
 * @throws DependencyError `UPSTREAM_UNAVAILABLE` when the upstream does not answer the introspection query
 */
export async function introspectUpstream(options: UpstreamOptions): Promise<GraphQLSchema> {
  const result = await new Upstream(options).forward({
    document: parse(getIntrospectionQuery()),
    variables: undefined,
    operationName: undefined,
    request: undefined,
  });
  if (result.data === undefined || result.data === null) {
    throw new DependencyError(
      'UPSTREAM_UNAVAILABLE',
      `introspection of ${options.url} failed: ${result.errors?.[0]?.message ?? 'no data'}`,
    );
  }
  return buildClientSchema(result.data as unknown as IntrospectionQuery);
}

const EXECUTABLE_LOCATIONS = new Set<string>([
  DirectiveLocation.QUERY,
  DirectiveLocation.MUTATION,
  DirectiveLocation.SUBSCRIPTION,
  DirectiveLocation.FIELD,
  DirectiveLocation.FRAGMENT_DEFINITION,
  DirectiveLocation.FRAGMENT_SPREAD,
  DirectiveLocation.INLINE_FRAGMENT,
  DirectiveLocation.VARIABLE_DEFINITION,
]);

/** The schema as a client's operation sees it: type-system directives (the cost directives among them) dropped. */
function operationFacing(schema: GraphQLSchema): GraphQLSchema {
  const config = schema.toConfig();
  return new GraphQLSchema({
    ...config,
    directives: config.directives.filter((directive) => directive.locations.some((location) => EXECUTABLE_LOCATIONS.has(location))),
  });
}

/** How the upstream's live schema compares with the one the gateway prices and validates with. */
export type UpstreamSchemaCheck =
  | { isReady: true }
  | { isReady: false; code: 'UPSTREAM_UNAVAILABLE'; message: string }
  | { isReady: false; code: 'UPSTREAM_SCHEMA_DRIFT'; changes: string[] };

/**
 * Introspects the upstream and lists what it no longer serves of the gateway's schema (graphql-js's breaking
 * changes: removed types and fields, changed argument or field types). Additions are not drift: the gateway
 * simply does not expose them until its schema is updated; nor are type-system directives (the upstream need
 * not declare the cost directives the gateway prices with).
 */
export async function checkUpstreamSchema(schema: GraphQLSchema, upstream: UpstreamOptions): Promise<UpstreamSchemaCheck> {
  let live: GraphQLSchema;
  try {
    live = await introspectUpstream(upstream);
  } catch (error) {
    return { isReady: false, code: 'UPSTREAM_UNAVAILABLE', message: error instanceof Error ? error.message : String(error) };
  }
  const changes = findBreakingChanges(operationFacing(schema), operationFacing(live)).map(
    (change) => `${change.type}: ${change.description}`,
  );
  return changes.length === 0 ? { isReady: true } : { isReady: false, code: 'UPSTREAM_SCHEMA_DRIFT', changes };
}

/** Upstream failures (`Upstream.forward`'s codes): nothing or nothing usable came back. */
const UPSTREAM_FAILURES = new Set<string>(['UPSTREAM_TIMEOUT', 'UPSTREAM_UNAVAILABLE', 'UPSTREAM_FAILED']);

/** Whether a result is an upstream failure rather than the upstream's own answer. */
export function isUpstreamFailure(result: ExecutionResult): boolean {
  return result.errors?.some((error) => UPSTREAM_FAILURES.has(String(error.extensions?.['code']))) ?? false;
}

/**
 * The last check of the upstream's schema, reused for `ttlMs` (a burst of `/ready` calls makes one
 * introspection; calls while one runs share it).
 */
export function cachedUpstreamCheck(
  check: () => Promise<UpstreamSchemaCheck>,
  ttlMs: number,
  nowMs: () => number = () => performance.now(),
): () => Promise<UpstreamSchemaCheck> {
  let last: { atMs: number; result: Promise<UpstreamSchemaCheck> } | undefined;
  return () => {
    const now = nowMs();
    if (last === undefined || now - last.atMs >= ttlMs) last = { atMs: now, result: check() };
    return last.result;
  };
}

/** How an operation is forwarded: one JSON result, incremental delivery, or a subscription's events. */
type ForwardKind = 'single' | 'incremental' | 'subscription';

/** The forward kind of each document (yoga hands the same parsed document for the same query text). */
function forwardKinds(): (args: ExecutionArgs) => ForwardKind {
  const kinds = new WeakMap<DocumentNode, ForwardKind>();
  return (args) => {
    let kind = kinds.get(args.document);
    if (kind === undefined) {
      let isIncremental = false;
      visit(args.document, {
        Directive(node) {
          if (node.name.value === 'defer' || node.name.value === 'stream') isIncremental = true;
        },
      });
      kind = isIncremental ? 'incremental' : 'single';
      kinds.set(args.document, kind);
    }
    if (getOperationAST(args.document, args.operationName)?.operation === OperationTypeNode.SUBSCRIPTION) return 'subscription';
    return kind;
  };
}

/** Forwards admitted operations to the upstream, with the caller's ids under the operator's header names. */
function forwarders(upstream: Upstream, identityHeaders: GatewayOptions['identityHeaders']) {
  const inputOf = (args: ExecutionArgs): ForwardInput => {
    const context = args.contextValue as TollgateContext & { request?: Request };
    const identity = context.tollgate?.identity;
    const headers: Record<string, string> = {};
    if (identity !== undefined && identityHeaders?.tenant !== undefined) headers[identityHeaders.tenant] = identity.tenant;
    if (identity !== undefined && identityHeaders?.keyId !== undefined) headers[identityHeaders.keyId] = identity.keyId;
    return {
      document: args.document,
      variables: args.variableValues ?? undefined,
      operationName: args.operationName ?? undefined,
      request: context.request,
      headers,
    };
  };
  const kindOf = forwardKinds();
  return {
    /** One result (deferred jobs run through this). */
    single: (args: ExecutionArgs): Promise<ExecutionResult> => upstream.forward(inputOf(args)),
    /** One result, or the payloads of `@defer`/`@stream` or of a subscription as the upstream streams them. */
    any: (args: ExecutionArgs): Promise<ExecutionResult | AsyncIterable<ExecutionResult>> => {
      const kind = kindOf(args);
      return kind === 'single' ? upstream.forward(inputOf(args)) : upstream.forwardStream(inputOf(args), kind);
    },
  };
}

/**
 * Replaces execution and subscription by a forward to the upstream (after `useTollgate` admitted the operation).
 * `@defer`/`@stream` and subscriptions pass through when the upstream's schema declares them (otherwise they
 * fail validation, as the upstream itself would refuse them).
 */
function useUpstream(
  upstream: Upstream,
  forward: (args: ExecutionArgs) => Promise<ExecutionResult | AsyncIterable<ExecutionResult>>,
): Plugin<TollgateContext> {
  return {
    onYogaInit({ yoga }) {
      upstream.useFetch(yoga.fetchAPI.fetch);
    },
    onExecute({ setExecuteFn }) {
      setExecuteFn(forward as never);
    },
    onSubscribe({ setSubscribeFn }) {
      setSubscribeFn(forward as never);
    },
  };
}

/** What a server needs to serve the upstream with tollgate in front (`createGateway`, or the API process in gateway mode). */
export interface GatewayParts {
  schema: GraphQLSchema;
  /** After `useTollgate`: forward what it admitted. */
  plugins: Plugin<TollgateContext>[];
  /** `useTollgate`'s `keepsReservation` when failures are charged as reserved. */
  keepsReservation: ((result: ExecutionResult) => boolean) | undefined;
  /** The upstream schema check, cached `readyCacheMs`. */
  checkUpstream: () => Promise<UpstreamSchemaCheck>;
  /** Executes an operation by forwarding it (deferred jobs run through it too). */
  execute: (args: ExecutionArgs) => Promise<ExecutionResult>;
}

/** The parts of a gateway over `options` (see {@link GatewayParts}). */
export function gatewayParts(options: Omit<GatewayOptions, 'tollgate'>): GatewayParts {
  const upstream = new Upstream(options.upstream);
  const forward = forwarders(upstream, options.identityHeaders);
  return {
    schema: options.schema,
    plugins: [useUpstream(upstream, forward.any)],
    keepsReservation: options.failureCharge === 'reserved' ? isUpstreamFailure : undefined,
    checkUpstream: cachedUpstreamCheck(() => checkUpstreamSchema(options.schema, options.upstream), options.readyCacheMs ?? 5_000),
    execute: forward.single,
  };
}

/**
 * The gateway's yoga server: `/graphql` in front of the upstream, `/health`, and `/ready`, which answers 503
 * with the reason while the upstream is unreachable or no longer serves the gateway's schema.
 */
export function createGateway(options: GatewayOptions): GatewayServer {
  const parts = gatewayParts(options);
  return createYoga<object, TollgateContext>({
    schema: options.schema,
    graphqlEndpoint: '/graphql',
    healthCheckEndpoint: '/health',
    landingPage: false,
    maskedErrors: true,
    plugins: [
      useReadyEndpoint({
        endpoint: '/ready',
        check: async ({ fetchAPI }) => {
          const check = await parts.checkUpstream();
          return new fetchAPI.Response(JSON.stringify(check), {
            status: check.isReady ? 200 : 503,
            headers: { 'content-type': 'application/json' },
          });
        },
      }),
      useTollgate({
        ...(parts.keepsReservation === undefined ? {} : { keepsReservation: parts.keepsReservation }),
        ...options.tollgate,
      }),
      ...parts.plugins,
    ],
  });
}
