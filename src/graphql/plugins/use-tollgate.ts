/**
 * `useTollgate`: cost-based limits for any graphql-yoga server (DESIGN §1–§2).
 *
 * Per HTTP request: identify the caller (before parsing), cap the document
 * statically (tokens while parsing; depth, aliases, nodes while validating),
 * then per operation, in `onExecute` where the variables are known: price it
 * with the compiled formula, ask the decider, and either answer the decision
 * (429, 202, 503, 400) without running a resolver, or run it, measure the
 * actual cost from what came back, settle the difference, and report
 * `extensions.cost` and the RateLimit headers. Each operation of a batch is
 * priced, decided and charged on its own; streams (`@defer`/`@stream`,
 * subscriptions) are charged as `streamed-results.ts` says.
 */
import type { DocumentNode, ExecutionResult, GraphQLError, GraphQLSchema, ParseOptions, Source } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Decider } from '../../decider/index.js';
import type { Deferrer } from '../../jobs/index.js';
import { ValidationError, systemClock, type Clock, type Logger } from '../../shared/index.js';
import { admitRequest, type Admission, type AdmissionLease } from '../admission.js';
import { STATIC_LIMIT_DEFAULTS, staticLimitsRule, type StaticLimits } from '../cost/guards.js';
import type { CostModelOptions } from '../cost/model.js';
import { Pricer } from '../cost/pricer.js';
import { quoteOperation, type QuoteResult } from '../cost/quote.js';
import type { EdgeResponse } from '../decision-response.js';
import { IdempotentResponses } from '../idempotency/replay.js';
import { isIdempotencyKey } from '../idempotency/request-id.js';
import type { ResponseStore } from '../idempotency/response-store.js';
import { ApiKeyIdentifier, type AnonymousPolicy, type Identity } from '../identity/identify.js';
import { socketClientIp } from '../identity/client-address.js';
import type { KeyStore } from '../identity/key-store.js';
import type { TollgateMetrics } from '../metrics.js';
import { OperationGate, type DecidedEvent, type OperationGateOptions } from '../operation-gate.js';
import { tenantPlanOf, type Plan, type PlanStore } from '../plans.js';
import { edgeError, type EdgeErrorCode } from '../responses.js';
import { TokenLimitCheck, parseAtEdge } from '../token-limit.js';
import { executeOperation, subscribeOperation } from './gated-operations.js';

/** Options of {@link useTollgate}. */
export interface TollgateOptions {
  /** Decides every operation (use `ResilientDecider` in production: degraded decisions instead of errors). */
  decider: Decider;
  /** API key records, looked up by sha256. */
  keyStore: KeyStore;
  /** The plan of each key (limits, billing period, per-operation maximum). */
  plans: PlanStore;
  logger: Logger;
  /** Where `@deferrable` operations go on a `defer` limit. Without one, `defer` limits act as `hard`. */
  deferrer?: Deferrer;
  /** Metrics registry of this app (decisions, decider latency, refusals, cost units). */
  metrics?: TollgateMetrics;
  /** @default systemClock */
  clock?: Clock;
  /** Requests without a key: refused with 401, or metered per client address under one tenant. @default { kind: 'reject' } */
  anonymous?: AnonymousPolicy;
  /** Static caps on documents and batches. @default STATIC_LIMIT_DEFAULTS */
  limits?: StaticLimits;
  /**
   * Cost model defaults (list size, mutation base, slicing bound), the
   * compiled-formula cache size, and the least any operation costs (so even
   * `{ __typename }` floods are limited; `minimumCost` @default 1).
   */
  cost?: CostModelOptions & { maxCachedDocuments?: number; minimumCost?: number };
  /** How long a key lookup is cached (the key store's version change drops it sooner), ms. @default 30000 */
  identityCacheTtlMs?: number;
  /** Unknown API keys a client address may present per second in this instance before uncached keys get 429. @default 5 */
  unknownKeysPerSecond?: number;
  /** The client's address (for anonymous per-IP plans). @default the socket's remote address */
  clientIp?: (request: Request, serverContext: Record<string, unknown>) => string | undefined;
  /** Up to this fraction of the wait is added at random to `Retry-After`. @default 0.2 */
  retryAfterJitterRatio?: number;
  /** @default Math.random */
  random?: () => number;
  /**
   * When to settle: `changed` settles only when the actual cost differs from
   * the requested one or a concurrency lease must be released (a settlement
   * that moves nothing is skipped, saving a Redis call); `always` settles
   * every admitted operation. @default 'changed'
   */
  settle?: 'changed' | 'always';
  /**
   * Where the first response of a request sent with an Idempotency-Key is kept,
   * so its retries get the same body (header `Idempotent-Replayed: true`) and
   * the operation runs once. Without one, a retry is a 409
   * `IDEMPOTENCY_KEY_REPLAYED` (still one decision and one charge).
   */
  responses?: ResponseStore;
  /**
   * Whether an executed operation keeps its whole reservation instead of being settled to the actual cost
   * measured on its result (gateway mode: an upstream failure charged as reserved). @default never
   */
  keepsReservation?: (result: ExecutionResult) => boolean;
  /** How long an Idempotency-Key is honoured: the decider's request record and the stored response, ms. @default 86400000 (24 h) */
  idempotencyTtlMs?: number;
  /**
   * The instance's in-flight bound: an identified request beyond its plan's criticality bound is shed
   * (503 `OVERLOADED`, `Retry-After`) before parsing. @default none: every request is admitted
   */
  admission?: Admission;
  /** Hears every decision, e.g. the API process's activity counters (must return at once and never throw). */
  onDecided?: (event: DecidedEvent) => void;
  /** Hears every settlement that moved the decider's counters (see `OperationGateOptions.onSettled`). */
  onSettled?: OperationGateOptions['onSettled'];
}

/** What the plugin adds to the GraphQL context (read by resolvers such as `me` and `quote`). */
export interface TollgateContext {
  tollgate?: {
    identity: Identity;
    plan: Plan;
    /** A dry-run price of another operation against this schema: no tokens taken. */
    quote(input: { query: string; variables?: Record<string, unknown> | null; operationName?: string | null }): QuoteResult;
  };
}

/** State of one HTTP request (shared by the operations of a batch). */
interface RequestState {
  identity: Identity;
  plan: Plan;
  idempotencyKey: string | null;
  /** `Tollgate-Notify: webhook`: a deferred job of this request notifies the tenant's webhook when it finishes. */
  isNotifyRequested: boolean;
  /** Each operation's position in a batch (undefined for a single operation: it is 0). */
  batchIndex: WeakMap<object, number> | undefined;
  nextIndex: number;
  headers: Record<string, string>;
  /** The request's in-flight slot, released with its response. */
  lease: AdmissionLease | undefined;
  /** `context.tollgate`, made once per request. */
  context: NonNullable<TollgateContext['tollgate']> | undefined;
}

type Hooks = Plugin<TollgateContext>;
type RequestParsePayload = Parameters<NonNullable<Hooks['onRequestParse']>>[0];
type RequestParseHookResult = Exclude<Awaited<ReturnType<NonNullable<Hooks['onRequestParse']>>>, void>;

/** What the hooks of one plugin instance share. */
interface Runtime {
  options: TollgateOptions;
  limits: Required<StaticLimits>;
  identifier: ApiKeyIdentifier;
  requests: WeakMap<Request, RequestState>;
  gate: OperationGate;
  pricerFor: (schema: GraphQLSchema) => Pricer;
  /** The least an operation reserves (`cost.minimumCost`), which a quote includes. */
  minimumCost: number;
  /** The schema yoga serves (for `quote`); set by `onSchemaChange`. */
  schema: GraphQLSchema | undefined;
  /** `context.tollgate.quote`. */
  quote: NonNullable<TollgateContext['tollgate']>['quote'];
  /** A refusal thrown or returned by a hook, counted in the refusals metric. */
  refuse: (input: {
    code: EdgeErrorCode;
    message: string;
    status: number;
    headers?: Record<string, string>;
    extensions?: Record<string, unknown>;
  }) => GraphQLError;
  /** Counts a refusal and adds the answer's headers to its request's response; the result to send. */
  send: (response: EdgeResponse, state?: RequestState) => ExecutionResult;
}

/**
 * The yoga plugin. Add it to your server with the cost directives in your
 * schema (`COST_DIRECTIVES_SDL`):
 * `createYoga({ schema, plugins: [useTollgate({ decider, keyStore, plans, logger })] })`.
 * @throws ValidationError `INVALID_INPUT` when `idempotencyTtlMs` is not an integer of at least 1000
 */
export function useTollgate(options: TollgateOptions): Plugin<TollgateContext> {
  const runtime = createRuntime(options);
  const { limits } = runtime;
  /** One validation rule object for every request (yoga caches validation per rule set and document). */
  const staticRule = staticLimitsRule(limits);
  const tokenCheck = new TokenLimitCheck(limits.maxTokens);
  const parseFn = (source: string | Source, parseOptions?: ParseOptions): DocumentNode =>
    parseAtEdge(source, { maxTokens: limits.maxTokens, ...(parseOptions === undefined ? {} : { parseOptions }) });
  return {
    onSchemaChange: (payload) => {
      runtime.schema = payload.schema as GraphQLSchema;
    },
    onRequestParse: (payload) => openRequest(runtime, payload),
    onParams: ({ params, setResult }) => {
      // Refusing here (not in parse) keeps the 400 even for application/json clients, which yoga answers 200 for parse errors.
      const flood = params.query === undefined ? undefined : tokenCheck.errorOf(params.query);
      if (flood === undefined) return;
      setResult({
        errors: [runtime.refuse({ code: flood.code, message: flood.message, status: 400, extensions: { max: flood.maxTokens } })],
      });
    },
    onParse: ({ setParseFn }) => {
      setParseFn(parseFn);
    },
    onValidate: ({ addValidationRule }) => {
      addValidationRule(staticRule);
    },
    onContextBuilding: ({ context, extendContext }) => {
      const tollgate = tollgateContext(runtime, context.request);
      if (tollgate !== undefined) extendContext({ tollgate });
    },
    onExecute: (payload) => executeOperation(runtime, payload),
    onSubscribe: (payload) => subscribeOperation(runtime, payload),
    onResponse: ({ request, response }) => {
      const state = runtime.requests.get(request);
      if (state === undefined) return;
      state.lease?.release();
      // Headers yoga already took from an error's extensions stay as they are (setting them again can duplicate them on the wire).
      for (const [name, value] of Object.entries(state.headers)) if (!response.headers.has(name)) response.headers.set(name, value);
    },
  };
}

/** The options resolved once per plugin instance. */
function createRuntime(options: TollgateOptions): Runtime {
  const { logger, metrics } = options;
  const clock = options.clock ?? systemClock;
  const idempotencyTtlMs = options.idempotencyTtlMs ?? 86_400_000;
  if (!Number.isSafeInteger(idempotencyTtlMs) || idempotencyTtlMs < 1_000) {
    throw new ValidationError('INVALID_INPUT', `idempotencyTtlMs must be an integer of at least 1000 ms, got ${idempotencyTtlMs}`);
  }
  const identifier = new ApiKeyIdentifier({
    keyStore: options.keyStore,
    clock,
    ...(options.anonymous === undefined ? {} : { anonymous: options.anonymous }),
    ...(options.identityCacheTtlMs === undefined ? {} : { cacheTtlMs: options.identityCacheTtlMs }),
    ...(options.unknownKeysPerSecond === undefined ? {} : { unknownKeysPerSecond: options.unknownKeysPerSecond }),
  });
  const pricerFor = pricerCache(options);
  const gate = new OperationGate({
    decider: options.decider,
    ...(options.deferrer === undefined ? {} : { deferrer: options.deferrer }),
    logger,
    ...(metrics === undefined ? {} : { metrics }),
    pricerFor,
    responses: new IdempotentResponses({
      ...(options.responses === undefined ? {} : { store: options.responses }),
      logger,
      clock,
      ttlMs: idempotencyTtlMs,
    }),
    minimumCost: minimumCostOf(options),
    ...(options.keepsReservation === undefined ? {} : { keepsReservation: options.keepsReservation }),
    retry: { jitterRatio: options.retryAfterJitterRatio ?? 0.2, random: options.random ?? Math.random },
    settle: options.settle ?? 'changed',
    idempotencyTtlMs,
    ...(options.onDecided === undefined ? {} : { onDecided: options.onDecided }),
    ...(options.onSettled === undefined ? {} : { onSettled: options.onSettled }),
  });
  const runtime: Omit<Runtime, 'quote'> = {
    options,
    limits: { ...STATIC_LIMIT_DEFAULTS, ...options.limits },
    minimumCost: minimumCostOf(options),
    identifier,
    requests: new WeakMap(),
    gate,
    pricerFor,
    schema: undefined,
    refuse: ({ code, message, ...rest }) => {
      metrics?.refusals.inc({ code });
      return edgeError(code, message, rest);
    },
    send: (response, state) => {
      if (response.refusal !== undefined) metrics?.refusals.inc({ code: response.refusal });
      if (state !== undefined) Object.assign(state.headers, response.headers);
      return response.result;
    },
  };
  // the same object: `quote` reads the schema `onSchemaChange` sets on it
  return Object.assign(runtime, { quote: quoteOf(runtime) });
}

/** One pricer per schema (its compiled formulas are cached per document). */
function pricerCache(options: TollgateOptions): (schema: GraphQLSchema) => Pricer {
  const pricers = new WeakMap<GraphQLSchema, Pricer>();
  return (schema: GraphQLSchema): Pricer => {
    let pricer = pricers.get(schema);
    if (pricer === undefined) {
      pricer = new Pricer(schema, {
        ...options.cost,
        onEngineMismatch: (mismatch) =>
          options.logger.error(
            { code: 'INVARIANT_VIOLATED', ...mismatch },
            'compiled cost formula disagrees with graphql-query-complexity; using the engine',
          ),
      });
      pricers.set(schema, pricer);
    }
    return pricer;
  };
}

const minimumCostOf = (options: TollgateOptions): number => options.cost?.minimumCost ?? 1;

/** What resolvers get as `context.tollgate`, made once per request; undefined for a request that was not identified. */
function tollgateContext(runtime: Runtime, request: Request): TollgateContext['tollgate'] {
  const state = runtime.requests.get(request);
  if (state === undefined) return undefined;
  state.context ??= { identity: state.identity, plan: state.plan, quote: runtime.quote };
  return state.context;
}

/** `context.tollgate.quote`: one function per plugin instance (it reads nothing of the request). */
function quoteOf(runtime: Omit<Runtime, 'quote'>): NonNullable<TollgateContext['tollgate']>['quote'] {
  return (input) => {
    if (runtime.schema === undefined) throw new Error('useTollgate has not seen the schema yet');
    return quoteOperation({
      pricer: runtime.pricerFor(runtime.schema),
      query: input.query,
      variables: input.variables ?? undefined,
      operationName: input.operationName ?? undefined,
      limits: runtime.limits,
      minimumCost: runtime.minimumCost,
    });
  };
}

/** Identifies the caller before parsing (401, 403, 429 and 400 for bad headers) and caps batches once parsed. */
async function openRequest(runtime: Runtime, { request, serverContext }: RequestParsePayload): Promise<RequestParseHookResult> {
  const { options, limits, refuse } = runtime;
  const clientIp = (options.clientIp ?? socketClientIp)(request, serverContext);
  const identified = await runtime.identifier.identify(request.headers.get('authorization'), clientIp);
  if (!identified.isOk) {
    throw refuse({
      code: identified.code,
      message: identified.message,
      status: identified.status,
      ...(identified.status === 401 ? { headers: { 'WWW-Authenticate': 'Bearer realm="tollgate"' } } : {}),
      ...(identified.retryAfterMs === undefined
        ? {}
        : { headers: { 'Retry-After': String(Math.max(1, Math.ceil(identified.retryAfterMs / 1_000))) } }),
    });
  }
  const { identity } = identified;
  // the plan in the tenant's own calendar (its account's billing period): one source of truth for its periods
  const plan = tenantPlanOf(options.plans, identity.planId, identity.tenant);
  if (plan === undefined) throw refuse({ code: 'PLAN_UNAVAILABLE', message: 'no plan is configured for this API key', status: 403 });
  const rawKey = request.headers.get('idempotency-key');
  if (rawKey !== null && !isIdempotencyKey(rawKey)) {
    throw refuse({ code: 'INVALID_ID', message: 'Idempotency-Key must be 1-64 characters of a-z, 0-9, ".", "_", "-"', status: 400 });
  }
  const notify = request.headers.get('tollgate-notify');
  if (notify !== null && notify.trim().toLowerCase() !== 'webhook') {
    throw refuse({
      code: 'INVALID_HEADER',
      message: 'Tollgate-Notify accepts one value: webhook (a signed notice when a deferred job finishes)',
      status: 400,
    });
  }
  const state: RequestState = {
    identity,
    plan,
    idempotencyKey: rawKey,
    isNotifyRequested: notify !== null,
    batchIndex: undefined,
    nextIndex: 0,
    headers: {},
    lease:
      options.admission === undefined
        ? undefined
        : admitRequest({
            admission: options.admission,
            ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
            criticality: plan.criticality,
            serverContext,
            refuse,
          }),
    context: undefined,
  };
  runtime.requests.set(request, state);
  return {
    onRequestParseDone: ({ requestParserResult }) => {
      if (!Array.isArray(requestParserResult)) return;
      if (requestParserResult.length > limits.maxBatchSize) {
        throw refuse({ code: 'BATCH_LIMIT_EXCEEDED', message: `a batch may hold at most ${limits.maxBatchSize} operations`, status: 413 });
      }
      const batchIndex = new WeakMap<object, number>();
      requestParserResult.forEach((params, index) => batchIndex.set(params, index));
      state.batchIndex = batchIndex;
      state.nextIndex = requestParserResult.length;
    },
  };
}
