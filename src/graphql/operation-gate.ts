/**
 * One operation through the limits (DESIGN §1–§2), without yoga: price it with its variables, name its request, answer a retried
 * deferred request with its job, decide, and either answer the decision (429, 202, 503, 409, 400) or admit the operation; once it
 * ran, measure its actual cost, settle the difference and report. `useTollgate` calls this from `onExecute`.
 */
import { getOperationAST, type ExecutionArgs, type ExecutionResult } from 'graphql';
import type { DecideInput, Decider, Decision, SettleInput } from '../decider/index.js';
import { deferOperation, deferSubmission, findRetriedJob, type DeferSubmission, type Deferrer } from '../jobs/index.js';
import { DependencyError, InvariantError, OverloadedError, ValidationError, type EventId, type Logger } from '../shared/index.js';
import { PricingError } from './cost/model.js';
import { measureActualCost } from './cost/actual-cost.js';
import type { CostPlan } from './cost/plan.js';
import type { Pricer } from './cost/pricer.js';
import {
  admittedResponse,
  deferralLaneFullResponse,
  limiterUnavailableResponse,
  overloadedResponse,
  deferralResponse,
  degradedRefusalResponse,
  deniedResponse,
  jobAcceptedResponse,
  jobsUnavailableResponse,
  refusal,
  type AdmittedDecision,
  type EdgeResponse,
  type RetryJitter,
} from './decision-response.js';
import type { IdempotentResponses } from './idempotency/replay.js';
import { operationRequestId } from './idempotency/request-id.js';
import type { Identity } from './identity/identify.js';
import type { TollgateMetrics } from './metrics.js';
import type { Plan } from './plans.js';

export interface OperationGateOptions {
  decider: Decider;
  /** Without one, `defer` limits act as `hard`. */
  deferrer?: Deferrer;
  logger: Logger;
  metrics?: TollgateMetrics;
  /** The pricer of a schema (one per schema, shared with `quote`). */
  pricerFor: (schema: ExecutionArgs['schema']) => Pricer;
  responses: IdempotentResponses;
  /** The least any operation costs, units. */
  minimumCost: number;
  /** See `TollgateOptions.keepsReservation`. */
  keepsReservation?: (result: ExecutionResult) => boolean;
  retry: RetryJitter;
  /** `changed`: settle only when something moves (see `TollgateOptions.settle`). */
  settle: 'changed' | 'always';
  /** How long the decider keeps the request record of an Idempotency-Key, ms. */
  idempotencyTtlMs: number;
  /** Hear every decision (made, not yet answered) and settlement that moved counters; must return at once, never throw. */
  onDecided?: (event: DecidedEvent) => void;
  onSettled?: (input: SettleInput, refund: number) => void;
}

/** A decision, whose it is and what was decided, for `onDecided` (denial counters, rollout counts, keys' last use, rankings). */
export interface DecidedEvent {
  tenant: string;
  keyId: string;
  planId: string;
  operation: string;
  decision: Decision;
  input: DecideInput;
}

/** The caller of an operation, as identified for its HTTP request. */
export interface OperationCaller {
  identity: Identity;
  plan: Plan;
  idempotencyKey: string | null;
  isNotifyRequested: boolean;
  /** The operation's position in its batch; called once, when the request id is made. */
  batchIndex: () => number;
}

/** An operation that may run, and what its settlement needs. */
export interface AdmittedOperation {
  caller: OperationCaller;
  input: DecideInput;
  decision: AdmittedDecision;
  requestId: EventId;
  requested: number;
  costPlan: CostPlan;
  variables: Record<string, unknown>;
}

/** `answered`: send `response` and run nothing. `admitted`: run it, adding `headers` to the response. */
export type GateOutcome =
  { kind: 'answered'; response: EdgeResponse } | { kind: 'admitted'; operation: AdmittedOperation; headers: Record<string, string> };

const OPERATION_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

const answered = (response: EdgeResponse): GateOutcome => ({ kind: 'answered', response });

interface Priced {
  operationName: string;
  variables: Record<string, unknown>;
  requested: number;
  costPlan: CostPlan;
  query: string;
}

/** Decides and settles operations against their caller's plan. */
export class OperationGate {
  constructor(private readonly options: OperationGateOptions) {}

  /** Everything before execution. Throws only for failures no answer covers (they reach yoga's error masking). */
  async open(input: { args: ExecutionArgs; caller: OperationCaller; query: string | undefined }): Promise<GateOutcome> {
    const { caller } = input;
    const priced = this.price(input);
    if ('response' in priced) return answered(priced.response);
    let requestId: EventId;
    try {
      const batchIndex = caller.batchIndex();
      requestId = operationRequestId({
        idempotencyKey: caller.idempotencyKey,
        batchIndex,
        query: priced.query,
        operationName: priced.operationName,
        variables: priced.variables,
      });
    } catch {
      return answered(refusal({ code: 'INVALID_ID', message: 'invalid Idempotency-Key', status: 400 }));
    }
    const submission = (): DeferSubmission =>
      deferSubmission({
        tenant: caller.identity.tenant,
        keyId: caller.identity.keyId,
        planId: caller.plan.id,
        requestId,
        operationName: priced.costPlan.operationName,
        query: priced.query,
        variables: priced.variables,
        cost: priced.requested,
        isNotifyRequested: caller.isNotifyRequested,
      });
    // A retry (same Idempotency-Key) of a deferred request is answered with its job, before any decision:
    // deciding it could admit and run it beside the job.
    if (priced.costPlan.isDeferrable && caller.idempotencyKey !== null) {
      const known = await this.retriedJob({ submission: submission(), priced, plan: caller.plan });
      if (known !== undefined) return answered(known);
    }
    const decideInput = this.decideInput({ caller, priced, requestId });
    const decided = await this.decide(decideInput, caller);
    if ('response' in decided) return answered(decided.response);
    this.options.onDecided?.({
      tenant: caller.identity.tenant,
      keyId: caller.identity.keyId,
      planId: caller.plan.id,
      operation: decideInput.operation,
      decision: decided.decision,
      input: decideInput,
    });
    return this.answer({ decision: decided.decision, caller, priced, requestId, input: decideInput, submission });
  }

  /**
   * After execution: the actual cost (the whole reservation with `keepsReservation`), the settlement, and the result
   * with `extensions.cost` (kept for retries when idempotent).
   */
  async finish(
    operation: AdmittedOperation,
    result: ExecutionResult,
    how?: { keepsReservation: boolean },
  ): Promise<{ result: ExecutionResult; headers: Record<string, string> }> {
    const { minimumCost, metrics } = this.options;
    const { caller, requested, decision } = operation;
    const actual =
      how?.keepsReservation === true || this.options.keepsReservation?.(result) === true
        ? requested
        : Math.max(minimumCost, measureActualCost(operation.costPlan, result.data, operation.variables));
    const refund = await this.settle(operation, actual);
    metrics?.costUnits.inc({ kind: 'actual' }, actual);
    if (refund > 0) metrics?.costUnits.inc({ kind: 'refunded' }, refund);
    if (refund < 0) metrics?.costUnits.inc({ kind: 'overrun' }, -refund);
    const final = admittedResponse({ decision, result, requested, actual, refund, specs: caller.plan.limits });
    if (caller.idempotencyKey !== null)
      await this.options.responses.save({ tenant: caller.identity.tenant, requestId: operation.requestId, result: final.result });
    return final;
  }

  private price(input: { args: ExecutionArgs; caller: OperationCaller; query: string | undefined }): Priced | { response: EdgeResponse } {
    const { args, caller } = input;
    const operation = getOperationAST(args.document, args.operationName ?? undefined);
    const operationName = operation?.name?.value ?? 'anonymous';
    if (!OPERATION_NAME.test(operationName))
      return { response: refusal({ code: 'INVALID_ID', message: 'operation names are limited to 128 characters', status: 400 }) };
    const variables = (args.variableValues ?? {}) as Record<string, unknown>;
    let requested: number;
    let costPlan: CostPlan;
    try {
      const priced = this.options
        .pricerFor(args.schema)
        .price({ document: args.document, operationName: args.operationName, variables, source: input.query });
      requested = Math.max(this.options.minimumCost, priced.cost);
      costPlan = priced.plan;
    } catch (error) {
      if (!(error instanceof PricingError)) throw error;
      return { response: refusal({ code: error.code, message: error.message, status: 400, extensions: error.details }) };
    }
    const max = caller.plan.maxCostPerOperation;
    if (requested > max) {
      return {
        response: refusal({
          code: 'COST_EXCEEDS_MAXIMUM',
          message: `the operation costs ${requested}; this plan allows at most ${max} per operation`,
          status: 400,
          extensions: { requested, max },
        }),
      };
    }
    return { operationName, variables, requested, costPlan, query: input.query ?? '' };
  }

  /** The job of a retried deferred request, as a 202; a 503 when it cannot be told; undefined when there is none. */
  private async retriedJob(input: { submission: DeferSubmission; priced: Priced; plan: Plan }): Promise<EdgeResponse | undefined> {
    const { deferrer, logger, metrics } = this.options;
    if (deferrer === undefined) return undefined;
    const lookup = await findRetriedJob({ deferrer, submission: input.submission });
    switch (lookup.kind) {
      case 'none':
        return undefined;
      case 'overloaded':
        metrics?.shed.inc({ criticality: input.plan.criticality ?? 'default', reason: 'deferral-lane' });
        return deferralLaneFullResponse();
      case 'known':
        return jobAcceptedResponse({ job: lookup.job, requested: input.priced.requested, specs: input.plan.limits });
      case 'unavailable':
        logger.warn(
          { tenant: input.submission.tenant, requestId: input.submission.requestId, code: lookup.code },
          'deferred job lookup failed',
        );
        return jobsUnavailableResponse();
    }
  }

  private decideInput(input: { caller: OperationCaller; priced: Priced; requestId: EventId }): DecideInput {
    const { identity, plan, idempotencyKey } = input.caller;
    return {
      tenant: identity.tenant,
      keyId: identity.keyId,
      requestId: input.requestId,
      operation: input.priced.operationName,
      cost: input.priced.requested,
      limits: plan.limits,
      billingPeriod: plan.billingPeriod,
      policyVersion: plan.version,
      ...(plan.subShards === undefined ? {} : { subShards: plan.subShards }),
      ...(identity.clientIp === undefined ? {} : { clientIp: identity.clientIp }),
      isDeferrable: input.priced.costPlan.isDeferrable && this.options.deferrer !== undefined,
      // a client's Idempotency-Key is honoured for a day; a random request id needs only the decider's default
      ...(idempotencyKey === null ? {} : { recordTtlMs: this.options.idempotencyTtlMs }),
    };
  }

  /** Asks the decider; its failures become 400 (bad input) or 503 (unreachable), and the decision is counted. */
  private async decide(input: DecideInput, caller: OperationCaller): Promise<{ decision: Decision } | { response: EdgeResponse }> {
    const [{ decider, metrics, logger }, { identity }] = [this.options, caller];
    const startedAt = performance.now();
    let decision: Decision;
    try {
      decision = await decider.decide(input);
    } catch (error) {
      if (error instanceof ValidationError) return { response: refusal({ code: 'INVALID_ID', message: error.message, status: 400 }) };
      // this process was too busy to read the decider's answer in time: shed like admission control, nothing charged
      if (error instanceof OverloadedError) {
        metrics?.shed.inc({ criticality: caller.plan.criticality ?? 'default', reason: 'decider-wait' });
        return { response: overloadedResponse(error.message) };
      }
      if (error instanceof DependencyError) {
        logger.warn({ code: error.code, tenant: identity.tenant }, 'decider unavailable');
        return { response: limiterUnavailableResponse() };
      }
      throw error;
    }
    metrics?.deciderLatency.observe((performance.now() - startedAt) / 1000);
    const kind = decision.kind === 'degraded' ? `degraded-${decision.policy}` : decision.kind;
    const limit = decision.kind === 'denied' || decision.kind === 'deferred' ? decision.limitId : 'none';
    metrics?.decisions.inc({ kind, limit });
    logger.debug(
      {
        tenant: identity.tenant,
        keyId: identity.keyId,
        key: identity.keyFingerprint,
        operation: input.operation,
        requested: input.cost,
        decision: decision.kind,
      },
      'decided',
    );
    const isAdmitted = decision.kind === 'allowed' || decision.kind === 'warned' || (decision.kind === 'degraded' && decision.isAdmitted);
    metrics?.costUnits.inc({ kind: 'requested' }, isAdmitted ? input.cost : 0);
    return { decision };
  }

  /** What a decision means for the operation. */
  private async answer(input: {
    decision: Decision;
    caller: OperationCaller;
    priced: Priced;
    requestId: EventId;
    input: DecideInput;
    submission: () => DeferSubmission;
  }): Promise<GateOutcome> {
    const { decision, caller, priced } = input;
    const { logger, metrics, retry } = this.options;
    const specs = caller.plan.limits;
    const requested = priced.requested;
    const admitted = (headers: Record<string, string>, admittedDecision: AdmittedDecision): GateOutcome => ({
      kind: 'admitted',
      headers,
      operation: {
        caller,
        input: input.input,
        decision: admittedDecision,
        requestId: input.requestId,
        requested,
        costPlan: priced.costPlan,
        variables: priced.variables,
      },
    });
    switch (decision.kind) {
      case 'denied':
        return answered(deniedResponse({ decision, requested, specs, retry }));
      case 'deferred':
        return answered(await this.defer({ decision, caller, requested, requestId: input.requestId, submission: input.submission() }));
      case 'degraded':
        if (decision.isAdmitted) return admitted({ 'Tollgate-Degraded': decision.policy }, decision);
        logger.warn(
          { tenant: caller.identity.tenant, policy: decision.policy, code: decision.reason.code },
          'decider unavailable; refused by policy',
        );
        return answered(degradedRefusalResponse({ decision, requested, specs, retry }));
      case 'allowed':
      case 'warned': {
        if (!decision.isReplay) return admitted({}, decision);
        // Same key, same request: the first decision stands and nothing is charged again; the first
        // response is sent again when it was kept. The operation never runs twice.
        const replay = await this.options.responses.answer({
          tenant: caller.identity.tenant,
          requestId: input.requestId,
          decision,
          requested,
          specs,
        });
        metrics?.idempotentReplays.inc({ outcome: replay.outcome });
        return answered(replay);
      }
    }
  }

  /** Defers the operation; a failure to is answered (429 queue full, 503 jobs down) and logged. */
  private async defer(input: {
    decision: Extract<Decision, { kind: 'deferred' }>;
    caller: OperationCaller;
    requested: number;
    requestId: EventId;
    submission: DeferSubmission;
  }): Promise<EdgeResponse> {
    const { decision, requested } = input;
    const { deferrer, logger, metrics, retry } = this.options;
    if (deferrer === undefined) throw new InvariantError('a deferred decision without a deferrer');
    const outcome = await deferOperation({
      deferrer,
      submission: input.submission,
      limitId: decision.limitId,
      retryAfterMs: decision.retryAfterMs,
    });
    const log = { tenant: input.caller.identity.tenant, requestId: input.requestId };
    // The job could not be recorded or started: nothing runs later, so the client must retry itself
    // (a dependency down: with the same Idempotency-Key, which starts a job recorded without its workflow).
    if (outcome.kind === 'unavailable') logger.error({ ...log, code: outcome.code }, 'deferrer failed');
    if (outcome.kind === 'queue-full') logger.warn({ ...log, code: outcome.code }, 'deferred job queue full');
    // The lane was full: nothing recorded, nothing charged (a deferral takes no units); counted as shed.
    if (outcome.kind === 'overloaded')
      metrics?.shed.inc({ criticality: input.caller.plan.criticality ?? 'default', reason: 'deferral-lane' });
    return deferralResponse({ decision, outcome, requested, specs: input.caller.plan.limits, retry });
  }

  /** Settles the difference (and releases concurrency leases); the units refunded (negative: overrun), 0 when unknown. */
  private async settle(operation: AdmittedOperation, actual: number): Promise<number> {
    const { decider, metrics, logger, settle } = this.options;
    const refund = operation.requested - actual;
    const isConcurrencyPlan = operation.caller.plan.limits.some((limit) => limit.algorithm.kind === 'concurrency');
    if (settle === 'changed' && refund === 0 && !isConcurrencyPlan) return refund;
    try {
      const input = { ...operation.input, actual, decidedAtMs: operation.decision.nowMs };
      const settled = await decider.settle(input);
      if (settled.status === 'settled' && settled.refund !== 0) this.options.onSettled?.(input, settled.refund);
      return settled.status === 'unknown' ? 0 : refund;
    } catch (error) {
      metrics?.settleFailures.inc();
      const code = error instanceof DependencyError || error instanceof ValidationError ? error.code : 'UNKNOWN';
      logger.error({ tenant: operation.caller.identity.tenant, requestId: operation.requestId, code }, 'settle failed');
      return 0;
    }
  }
}
