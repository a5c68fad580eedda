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
 * priced, decided and charged on its own.
 */
import { createHash, randomUUID } from 'node:crypto';
import {
  GraphQLError,
  getOperationAST,
  parse,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLSchema,
  type ParseOptions,
  type Source,
} from 'graphql';
import type { Plugin, YogaInitialContext } from 'graphql-yoga';
import {
  type DecideInput,
  type Decider,
  type Decision,
  type LimitState,
} from '../../decider/index.js';
import {
  CapacityError,
  DependencyError,
  ValidationError,
  parseEventId,
  systemClock,
  type Clock,
  type EventId,
  type Logger,
  type TenantId,
} from '../../shared/index.js';
import { STATIC_LIMIT_DEFAULTS, staticLimitsRule, type StaticLimits } from '../cost/guards.js';
import { PricingError, type CostModelOptions } from '../cost/model.js';
import { measureActualCost } from '../cost/actual-cost.js';
import type { CostPlan } from '../cost/plan.js';
import { Pricer } from '../cost/pricer.js';
import { quoteOperation, type QuoteResult } from '../cost/quote.js';
import type { DeferInput, Deferrer } from '../../jobs/index.js';
import { toExecutionResult, toStoredResult, type ResponseStore, type StoredResponse } from '../idempotency/response-store.js';
import { ApiKeyIdentifier, type AnonymousPolicy, type Identity } from '../identity/identify.js';
import { socketClientIp } from '../identity/client-address.js';
import type { KeyStore } from '../identity/key-store.js';
import type { TollgateMetrics } from '../metrics.js';
import type { Plan, PlanStore } from '../plans.js';
import {
  applyRefund,
  costExtension,
  edgeError,
  rateLimitHeaders,
  retryAfterSeconds,
  warningReports,
  type CostExtension,
} from '../responses.js';

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
  /** How long an Idempotency-Key is honoured: the decider's request record and the stored response, ms. @default 86400000 (24 h) */
  idempotencyTtlMs?: number;
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
  batchIndex: WeakMap<object, number>;
  nextIndex: number;
  headers: Record<string, string>;
}

const IDEMPOTENCY_KEY = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const OPERATION_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/** A short digest of what was asked, so an Idempotency-Key reused for another operation is a new request. */
function requestFingerprint(query: string, operationName: string, variables: unknown): string {
  return createHash('sha256').update(`${operationName}\n${query}\n${JSON.stringify(variables ?? {})}`).digest('hex').slice(0, 16);
}

const isConcurrencyPlan = (plan: Plan): boolean => plan.limits.some((limit) => limit.algorithm.kind === 'concurrency');

/**
 * The yoga plugin. Add it to your server with the cost directives in your
 * schema (`COST_DIRECTIVES_SDL`):
 * `createYoga({ schema, plugins: [useTollgate({ decider, keyStore, plans, logger })] })`.
 */
export function useTollgate(options: TollgateOptions): Plugin<TollgateContext> {
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const jitterRatio = options.retryAfterJitterRatio ?? 0.2;
  const limits = { ...STATIC_LIMIT_DEFAULTS, ...options.limits };
  const settleMode = options.settle ?? 'changed';
  const minimumCost = options.cost?.minimumCost ?? 1;
  const clientIpOf = options.clientIp ?? socketClientIp;
  const identifier = new ApiKeyIdentifier({
    keyStore: options.keyStore,
    clock,
    ...(options.anonymous === undefined ? {} : { anonymous: options.anonymous }),
    ...(options.identityCacheTtlMs === undefined ? {} : { cacheTtlMs: options.identityCacheTtlMs }),
    ...(options.unknownKeysPerSecond === undefined ? {} : { unknownKeysPerSecond: options.unknownKeysPerSecond }),
  });
  const requests = new WeakMap<Request, RequestState>();
  const pricers = new WeakMap<GraphQLSchema, Pricer>();
  const metrics = options.metrics;
  const logger = options.logger;
  const idempotencyTtlMs = options.idempotencyTtlMs ?? 86_400_000;
  if (!Number.isSafeInteger(idempotencyTtlMs) || idempotencyTtlMs < 1_000) {
    throw new ValidationError('INVALID_INPUT', `idempotencyTtlMs must be an integer of at least 1000 ms, got ${idempotencyTtlMs}`);
  }
  const responses = options.responses;

  /** The first response of an idempotent request, or undefined (none kept, or the store is unreachable). */
  const loadStoredResponse = async (tenant: TenantId, requestId: EventId): Promise<StoredResponse | undefined> => {
    if (responses === undefined) return undefined;
    try {
      return await responses.load({ tenant, requestId, nowMs: clock.nowMs() });
    } catch (error) {
      logger.warn({ tenant, requestId, code: error instanceof DependencyError ? error.code : 'UNKNOWN' }, 'stored response unavailable');
      return undefined;
    }
  };

  /** Keeps the response for the key's retries; a failure to keep it only costs a retry its body (a 409). */
  const storeResponse = async (tenant: TenantId, requestId: EventId, result: ExecutionResult): Promise<void> => {
    if (responses === undefined) return;
    try {
      const outcome = await responses.save({ tenant, requestId, result: toStoredResult(result), ttlMs: idempotencyTtlMs, nowMs: clock.nowMs() });
      if (outcome === 'too-large') logger.warn({ tenant, requestId }, 'response too large to keep for Idempotency-Key retries');
    } catch (error) {
      logger.warn({ tenant, requestId, code: error instanceof DependencyError ? error.code : 'UNKNOWN' }, 'could not keep the response for Idempotency-Key retries');
    }
  };

  const pricerFor = (schema: GraphQLSchema): Pricer => {
    let pricer = pricers.get(schema);
    if (pricer === undefined) {
      pricer = new Pricer(schema, {
        ...options.cost,
        onEngineMismatch: (mismatch) => logger.error({ code: 'INVARIANT_VIOLATED', ...mismatch }, 'compiled cost formula disagrees with graphql-query-complexity; using the engine'),
      });
      pricers.set(schema, pricer);
    }
    return pricer;
  };

  let currentSchema: GraphQLSchema | undefined;
  const currentSchemaOf = (): GraphQLSchema => {
    if (currentSchema === undefined) throw new Error('useTollgate has not seen the schema yet');
    return currentSchema;
  };

  const refuse = (code: Parameters<typeof edgeError>[0], message: string, status: number, extra: { headers?: Record<string, string>; extensions?: Record<string, unknown> } = {}): GraphQLError => {
    metrics?.refusals.inc({ code });
    return edgeError(code, message, { status, ...extra });
  };

  const stop = (error: GraphQLError, extensions?: Record<string, unknown>): ExecutionResult => ({
    errors: [error],
    ...(extensions === undefined ? {} : { extensions }),
  });

  const recordDecision = (decision: Decision, startedAt: number): void => {
    metrics?.deciderLatency.observe((performance.now() - startedAt) / 1000);
    const kind = decision.kind === 'degraded' ? `degraded-${decision.policy}` : decision.kind;
    const limit = decision.kind === 'denied' || decision.kind === 'deferred' ? decision.limitId : 'none';
    metrics?.decisions.inc({ kind, limit });
  };

  /** One validation rule object for every request (yoga caches validation per rule set and document). */
  const staticRule = staticLimitsRule(limits);

  /** graphql's parse with the token cap, its errors mapped to edge errors (one function for every request). */
  const parseWithLimits = (source: string | Source, parseOptions?: ParseOptions): DocumentNode => {
    try {
      return parse(source, { ...parseOptions, maxTokens: limits.maxTokens });
    } catch (error) {
      if (!(error instanceof GraphQLError)) throw error;
      const isTooLong = error.message.includes('tokens');
      throw edgeError(isTooLong ? 'TOKEN_LIMIT_EXCEEDED' : 'GRAPHQL_PARSE_FAILED', error.message.replace(/^Syntax Error: /, ''), {
        status: 400,
        ...(isTooLong ? { extensions: { max: limits.maxTokens } } : {}),
      });
    }
  };

  return {
    onSchemaChange: (payload) => {
      currentSchema = payload.schema as GraphQLSchema;
    },

    onRequestParse: async ({ request, serverContext }) => {
      const identified = await identifier.identify(request.headers.get('authorization'), clientIpOf(request, serverContext));
      if (!identified.isOk) {
        throw refuse(identified.code, identified.message, identified.status, {
          ...(identified.status === 401 ? { headers: { 'WWW-Authenticate': 'Bearer realm="tollgate"' } } : {}),
          ...(identified.retryAfterMs === undefined ? {} : { headers: { 'Retry-After': String(Math.max(1, Math.ceil(identified.retryAfterMs / 1_000))) } }),
        });
      }
      const { identity } = identified;
      const plan = options.plans.get(identity.planId);
      if (plan === undefined) throw refuse('PLAN_UNAVAILABLE', 'no plan is configured for this API key', 403);
      const rawKey = request.headers.get('idempotency-key');
      if (rawKey !== null && !IDEMPOTENCY_KEY.test(rawKey)) {
        throw refuse('INVALID_ID', 'Idempotency-Key must be 1-64 characters of a-z, 0-9, ".", "_", "-"', 400);
      }
      const notify = request.headers.get('tollgate-notify');
      if (notify !== null && notify.trim().toLowerCase() !== 'webhook') {
        throw refuse('INVALID_HEADER', 'Tollgate-Notify accepts one value: webhook (a signed notice when a deferred job finishes)', 400);
      }
      const state: RequestState = {
        identity,
        plan,
        idempotencyKey: rawKey,
        isNotifyRequested: notify !== null,
        batchIndex: new WeakMap(),
        nextIndex: 0,
        headers: {},
      };
      requests.set(request, state);
      return {
        onRequestParseDone: ({ requestParserResult }) => {
          if (!Array.isArray(requestParserResult)) return;
          if (requestParserResult.length > limits.maxBatchSize) {
            throw refuse('BATCH_LIMIT_EXCEEDED', `a batch may hold at most ${limits.maxBatchSize} operations`, 413);
          }
          requestParserResult.forEach((params, index) => state.batchIndex.set(params, index));
          state.nextIndex = requestParserResult.length;
        },
      };
    },

    onParams: ({ params, setResult }) => {
      // A document with more tokens than characters cannot exist, so only long
      // ones are lexed here. Refusing here (not in parse) keeps the 400 even for
      // application/json clients, which yoga answers 200 for parse errors.
      const query = params.query;
      if (query === undefined || query.length <= limits.maxTokens) return;
      try {
        parse(query, { maxTokens: limits.maxTokens });
      } catch (error) {
        if (error instanceof GraphQLError && error.message.includes('tokens')) {
          setResult({
            errors: [refuse('TOKEN_LIMIT_EXCEEDED', `the document has more than ${limits.maxTokens} tokens`, 400, { extensions: { max: limits.maxTokens } })],
          });
        }
      }
    },

    onParse: ({ setParseFn }) => {
      setParseFn(parseWithLimits);
    },

    onValidate: ({ addValidationRule }) => {
      addValidationRule(staticRule);
    },

    onContextBuilding: ({ context, extendContext }) => {
      const state = requests.get(context.request);
      if (state === undefined) return;
      extendContext({
        tollgate: {
          identity: state.identity,
          plan: state.plan,
          quote: (input) =>
            quoteOperation({
              pricer: pricerFor(currentSchemaOf()),
              query: input.query,
              variables: input.variables ?? undefined,
              operationName: input.operationName ?? undefined,
              limits,
            }),
        },
      });
    },

    onExecute: async ({ args: untypedArgs, setResultAndStopExecution }) => {
      const args = untypedArgs as unknown as ExecutionArgs;
      const context = args.contextValue as YogaInitialContext & TollgateContext;
      const state = requests.get(context.request);
      if (state === undefined) {
        setResultAndStopExecution(stop(refuse('UNIDENTIFIED', 'the request was not identified', 401)));
        return;
      }
      const { identity, plan } = state;
      const document = args.document;
      const operation = getOperationAST(document, args.operationName ?? undefined);
      const operationName = operation?.name?.value ?? 'anonymous';
      if (!OPERATION_NAME.test(operationName)) {
        setResultAndStopExecution(stop(refuse('INVALID_ID', 'operation names are limited to 128 characters', 400)));
        return;
      }
      const variables = (args.variableValues ?? {}) as Record<string, unknown>;

      // price
      const pricer = pricerFor(args.schema);
      let requested: number;
      let costPlan: CostPlan;
      try {
        const priced = pricer.price({ document, operationName: args.operationName, variables, source: context.params.query });
        requested = Math.max(minimumCost, priced.cost);
        costPlan = priced.plan;
      } catch (error) {
        if (!(error instanceof PricingError)) throw error;
        setResultAndStopExecution(stop(refuse(error.code, error.message, 400, { extensions: error.details })));
        return;
      }
      if (requested > plan.maxCostPerOperation) {
        setResultAndStopExecution(
          stop(
            refuse('COST_EXCEEDS_MAXIMUM', `the operation costs ${requested}; this plan allows at most ${plan.maxCostPerOperation} per operation`, 400, {
              extensions: { requested, max: plan.maxCostPerOperation },
            }),
          ),
        );
        return;
      }

      // request id: the Idempotency-Key (scoped by tenant in every key, and by what was asked), else random
      const index = state.batchIndex.get(context.params) ?? state.nextIndex++;
      let requestId: EventId;
      try {
        requestId = parseEventId(
          state.idempotencyKey === null
            ? `r-${randomUUID()}`
            : `i-${state.idempotencyKey}.${index}.${requestFingerprint(context.params.query ?? '', operationName, variables)}`,
        );
      } catch {
        setResultAndStopExecution(stop(refuse('INVALID_ID', 'invalid Idempotency-Key', 400)));
        return;
      }

      // A retry (same Idempotency-Key) of a request that was deferred is answered with its job, before any
      // decision: deciding it could admit and run it beside the job.
      const deferrer = options.deferrer;
      if (costPlan.isDeferrable && state.idempotencyKey !== null && deferrer?.find !== undefined) {
        let known: Awaited<ReturnType<NonNullable<Deferrer['find']>>>;
        try {
          known = await deferrer.find({
            tenant: identity.tenant,
            requestId,
            resubmit: jobSubmission(state, requestId, costPlan, context.params.query ?? '', variables, requested),
          });
        } catch (error) {
          // Not knowing whether the job exists (or runs), deciding could run the operation beside it: refuse, retryable.
          logger.warn({ tenant: identity.tenant, requestId, code: error instanceof DependencyError ? error.code : 'UNKNOWN' }, 'deferred job lookup failed');
          setResultAndStopExecution(stop(refuse('JOBS_UNAVAILABLE', 'deferred jobs are unavailable; retry later with the same Idempotency-Key', 503, { headers: { 'Retry-After': '5' } })));
          return;
        }
        if (known !== undefined) {
          const headers = { Location: `/jobs/${known.id}` };
          Object.assign(state.headers, headers);
          setResultAndStopExecution({
            data: null,
            extensions: {
              job: { id: known.id, status: known.status, etaMs: known.etaMs },
              cost: costExtension({ requested, actual: null, states: [], specs: plan.limits, receipt: null }),
              http: { status: 202, headers },
            },
          });
          return;
        }
      }

      const input: DecideInput = {
        tenant: identity.tenant,
        keyId: identity.keyId,
        requestId,
        operation: operationName,
        cost: requested,
        limits: plan.limits,
        billingPeriod: plan.billingPeriod,
        policyVersion: plan.version,
        ...(plan.subShards === undefined ? {} : { subShards: plan.subShards }),
        ...(identity.clientIp === undefined ? {} : { clientIp: identity.clientIp }),
        isDeferrable: costPlan.isDeferrable && options.deferrer !== undefined,
        // a client's Idempotency-Key is honoured for a day; a random request id needs only the decider's default
        ...(state.idempotencyKey === null ? {} : { recordTtlMs: idempotencyTtlMs }),
      };
      const startedAt = performance.now();
      let decision: Decision;
      try {
        decision = await options.decider.decide(input);
      } catch (error) {
        if (error instanceof ValidationError) {
          setResultAndStopExecution(stop(refuse('INVALID_ID', error.message, 400)));
          return;
        }
        if (error instanceof DependencyError) {
          logger.warn({ code: error.code, tenant: identity.tenant }, 'decider unavailable');
          setResultAndStopExecution(stop(refuse('LIMITER_UNAVAILABLE', 'the limiter is unavailable; retry later', 503, { headers: { 'Retry-After': '1' } })));
          return;
        }
        throw error;
      }
      recordDecision(decision, startedAt);
      logger.debug(
        { tenant: identity.tenant, keyId: identity.keyId, key: identity.keyFingerprint, operation: operationName, requested, decision: decision.kind },
        'decided',
      );
      metrics?.costUnits.inc({ kind: 'requested' }, decision.kind === 'allowed' || decision.kind === 'warned' || (decision.kind === 'degraded' && decision.isAdmitted) ? requested : 0);

      const specs = plan.limits;
      switch (decision.kind) {
        case 'denied': {
          const headers = { ...rateLimitHeaders(decision.limits, specs, decision.nowMs) };
          if (decision.retryAfterMs !== null) headers['Retry-After'] = String(retryAfterSeconds(decision.retryAfterMs, { jitterRatio, random }));
          Object.assign(state.headers, headers);
          const code = decision.isQuota ? 'QUOTA_EXHAUSTED' : 'RATE_LIMITED';
          const message =
            decision.retryAfterMs === null
              ? `limit ${decision.limitId} can never admit an operation costing ${requested}`
              : decision.isQuota
                ? `quota ${decision.limitId} is exhausted for this period`
                : `rate limit ${decision.limitId} exceeded`;
          setResultAndStopExecution(
            stop(refuse(code, message, 429, { headers, extensions: { retryAfterMs: decision.retryAfterMs, limitId: decision.limitId } }), {
              cost: costExtension({ requested, actual: null, states: decision.limits, specs, receipt: null }),
            }),
          );
          return;
        }
        case 'deferred': {
          if (deferrer === undefined) throw new Error('a deferred decision without a deferrer');
          let job: Awaited<ReturnType<Deferrer['defer']>>;
          try {
            job = await deferrer.defer({
              ...jobSubmission(state, requestId, costPlan, context.params.query ?? '', variables, requested),
              limitId: decision.limitId,
              retryAfterMs: decision.retryAfterMs,
            });
          } catch (error) {
            // The job could not be recorded or started: nothing runs later, so the client must retry itself.
            if (!(error instanceof CapacityError)) {
              // a dependency failed (Temporal or DynamoDB down): 503, retry with the same Idempotency-Key (which
              // starts a job recorded without its workflow); never a hang, Temporal calls have a deadline
              logger.error({ tenant: identity.tenant, requestId, code: error instanceof DependencyError ? error.code : 'UNKNOWN' }, 'deferrer failed');
              setResultAndStopExecution(
                stop(refuse('JOBS_UNAVAILABLE', `limit ${decision.limitId} is exhausted and deferred jobs are unavailable; retry later with the same Idempotency-Key`, 503, {
                  headers: { 'Retry-After': '5' },
                  extensions: { limitId: decision.limitId },
                })),
              );
              return;
            }
            logger.warn({ tenant: identity.tenant, requestId, code: error.code }, 'deferred job queue full');
            const waitMs = decision.retryAfterMs ?? 1_000;
            const headers = { 'Retry-After': String(retryAfterSeconds(waitMs, { jitterRatio, random })) };
            Object.assign(state.headers, headers);
            setResultAndStopExecution(
              stop(refuse('QUOTA_EXHAUSTED', `limit ${decision.limitId} is exhausted and the operation could not be deferred`, 429, {
                headers,
                extensions: { retryAfterMs: waitMs, limitId: decision.limitId, reason: error.code },
              })),
            );
            return;
          }
          const headers = { ...rateLimitHeaders(decision.limits, specs, decision.nowMs), Location: `/jobs/${job.id}` };
          Object.assign(state.headers, headers);
          setResultAndStopExecution({
            data: null,
            extensions: {
              job: { id: job.id, status: job.status, etaMs: job.etaMs },
              cost: costExtension({ requested, actual: null, states: decision.limits, specs, receipt: null }),
              http: { status: 202, headers },
            },
          });
          return;
        }
        case 'degraded': {
          if (!decision.isAdmitted) {
            const waitMs = decision.retryAfterMs ?? 1_000;
            const headers = { 'Retry-After': String(retryAfterSeconds(waitMs, { jitterRatio, random })), 'Tollgate-Degraded': decision.policy };
            Object.assign(state.headers, headers);
            logger.warn({ tenant: identity.tenant, policy: decision.policy, code: decision.reason.code }, 'decider unavailable; refused by policy');
            const error =
              decision.policy === 'local'
                ? refuse('RATE_LIMITED', 'rate limit exceeded (local backstop while the limiter is unavailable)', 429, { headers, extensions: { retryAfterMs: waitMs, degraded: 'local' } })
                : refuse('LIMITER_UNAVAILABLE', 'the limiter is unavailable and this plan fails closed; retry later', 503, { headers, extensions: { retryAfterMs: waitMs } });
            setResultAndStopExecution(stop(error, { cost: costExtension({ requested, actual: null, states: [], specs, receipt: null, degraded: decision.policy }) }));
            return;
          }
          state.headers['Tollgate-Degraded'] = decision.policy;
          break;
        }
        case 'allowed':
        case 'warned': {
          if (decision.isReplay) {
            // Same key, same request: the first decision stands and nothing is charged again.
            // The first response is sent again when it was kept; the operation never runs twice.
            Object.assign(state.headers, rateLimitHeaders(decision.limits, specs, decision.nowMs));
            const stored = await loadStoredResponse(identity.tenant, requestId);
            if (stored !== undefined) {
              metrics?.idempotentReplays.inc({ outcome: 'replayed' });
              state.headers['Idempotent-Replayed'] = 'true';
              setResultAndStopExecution(toExecutionResult(stored.result));
              return;
            }
            metrics?.idempotentReplays.inc({ outcome: 'unavailable' });
            const headers = { 'Retry-After': '1' };
            Object.assign(state.headers, headers);
            setResultAndStopExecution(
              stop(
                refuse(
                  'IDEMPOTENCY_KEY_REPLAYED',
                  'this Idempotency-Key was already used for this operation; it was admitted once and is not run again, and its response is not available (still running, too large to keep, or the first attempt did not finish)',
                  409,
                  { headers },
                ),
                { cost: costExtension({ requested, actual: null, states: decision.limits, specs, receipt: decision.usageId, isReplay: true }) },
              ),
            );
            return;
          }
          break;
        }
      }

      // admitted: run, then measure, settle and report
      return {
        onExecuteDone: async ({ result, setResult }) => {
          if (!isExecutionResult(result)) return;
          const actual = Math.max(minimumCost, measureActualCost(costPlan, result.data, variables));
          let refund = requested - actual;
          const mustSettle = settleMode === 'always' || refund !== 0 || isConcurrencyPlan(plan);
          if (mustSettle) {
            try {
              const settled = await options.decider.settle({ ...input, actual, decidedAtMs: decision.nowMs });
              if (settled.status === 'unknown') refund = 0;
            } catch (error) {
              metrics?.settleFailures.inc();
              refund = 0;
              logger.error({ tenant: identity.tenant, requestId, code: error instanceof DependencyError || error instanceof ValidationError ? error.code : 'UNKNOWN' }, 'settle failed');
            }
          }
          metrics?.costUnits.inc({ kind: 'actual' }, actual);
          if (refund > 0) metrics?.costUnits.inc({ kind: 'refunded' }, refund);
          if (refund < 0) metrics?.costUnits.inc({ kind: 'overrun' }, -refund);
          const extensions: Record<string, unknown> = { ...result.extensions };
          if (decision.kind === 'degraded') {
            extensions['cost'] = costExtension({ requested, actual, states: [], specs, receipt: decision.usageId, degraded: decision.policy });
          } else if (decision.kind === 'allowed' || decision.kind === 'warned') {
            const states: LimitState[] = applyRefund(decision.limits, specs, refund);
            const cost: CostExtension = costExtension({ requested, actual, states, specs, receipt: decision.usageId });
            extensions['cost'] = cost;
            Object.assign(state.headers, rateLimitHeaders(states, specs, decision.nowMs));
            if (decision.kind === 'warned') {
              const warnings = warningReports(decision.warnings);
              extensions['quota'] = { warnings: warnings.extension };
              state.headers['Tollgate-Quota-Warning'] = warnings.header;
            }
          }
          const final: ExecutionResult = { ...result, extensions };
          if (state.idempotencyKey !== null) await storeResponse(identity.tenant, requestId, final);
          setResult(final);
        },
      };
    },

    // Subscriptions are not metered yet: refuse them rather than serve them free.
    onSubscribe: ({ setResultAndStopExecution }) => {
      setResultAndStopExecution(stop(refuse('SUBSCRIPTIONS_NOT_METERED', 'subscriptions are not available on a metered API', 400)));
    },

    onResponse: ({ request, response }) => {
      const state = requests.get(request);
      if (state === undefined) return;
      // Headers yoga already took from an error's extensions stay as they are (setting them again can duplicate them on the wire).
      for (const [name, value] of Object.entries(state.headers)) if (!response.headers.has(name)) response.headers.set(name, value);
    },
  };
}

/** What a deferred job of an operation is made of (for a defer, and for restarting one on a retry). */
function jobSubmission(
  state: RequestState,
  requestId: EventId,
  costPlan: CostPlan,
  query: string,
  variables: Record<string, unknown>,
  cost: number,
): Omit<DeferInput, 'limitId' | 'retryAfterMs'> {
  return {
    tenant: state.identity.tenant,
    keyId: state.identity.keyId,
    planId: state.plan.id,
    requestId,
    operationName: costPlan.operationName,
    query,
    variables,
    cost,
    ...(state.isNotifyRequested ? { notifyOnFinish: true } : {}),
  };
}

function isExecutionResult(result: unknown): result is ExecutionResult {
  return typeof result === 'object' && result !== null && !(Symbol.asyncIterator in result);
}
