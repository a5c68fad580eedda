/**
 * Idempotency-Key retries at the edge. The decider makes a retried key one
 * decision and one charge (`isReplay`); this answers such a retry with the
 * first response when it was kept, or a 409 while it is not (still running,
 * too large to keep, or the first attempt did not finish). The operation never
 * runs twice. A store that fails only costs a retry its body (the 409).
 */
import type { ExecutionResult } from 'graphql';
import type { Decision, LimitSpec } from '../../decider/index.js';
import { DependencyError, type Clock, type EventId, type Logger, type TenantId } from '../../shared/index.js';
import { refusal, type EdgeResponse } from '../decision-response.js';
import { costExtension, rateLimitHeaders } from '../responses.js';
import { toExecutionResult, toStoredResult, type ResponseStore, type StoredResponse } from './response-store.js';

type Admitted = Extract<Decision, { kind: 'allowed' | 'warned' }>;

/** How a replayed request was answered (the `idempotentReplays` metric's outcome). */
export type ReplayOutcome = 'replayed' | 'unavailable';

/**
 * The answer to a replayed decision: the stored first response (header
 * `Idempotent-Replayed: true`), else 409 `IDEMPOTENCY_KEY_REPLAYED` with
 * `Retry-After: 1` and `extensions.cost.isReplay`. Both carry the limits' state.
 */
export function replayResponse(input: {
  decision: Admitted;
  stored: StoredResponse | undefined;
  requested: number;
  specs: LimitSpec[];
}): EdgeResponse & { outcome: ReplayOutcome } {
  const { decision, stored, requested, specs } = input;
  const limitHeaders = rateLimitHeaders(decision.limits, specs, decision.nowMs);
  if (stored !== undefined) {
    return {
      result: toExecutionResult(stored.result),
      headers: { ...limitHeaders, 'Idempotent-Replayed': 'true' },
      status: 200,
      outcome: 'replayed',
    };
  }
  const headers = { 'Retry-After': '1' };
  return {
    ...refusal({
      code: 'IDEMPOTENCY_KEY_REPLAYED',
      message:
        'this Idempotency-Key was already used for this operation; it was admitted once and is not run again, and its response is not available (still running, too large to keep, or the first attempt did not finish)',
      status: 409,
      headers,
      responseHeaders: { ...limitHeaders, ...headers },
      cost: costExtension({ requested, actual: null, states: decision.limits, specs, receipt: decision.usageId, isReplay: true }),
    }),
    outcome: 'unavailable',
  };
}

export interface IdempotentResponsesOptions {
  /** Where first responses are kept; without one nothing is kept and every replay is a 409. */
  store?: ResponseStore;
  logger: Logger;
  clock: Clock;
  /** How long a kept response is honoured, ms (the decider's request record lives as long). */
  ttlMs: number;
}

const codeOf = (error: unknown): string => (error instanceof DependencyError ? error.code : 'UNKNOWN');

/** Keeps and loads first responses; failures are logged and read as "not kept", never thrown. */
export class IdempotentResponses {
  constructor(private readonly options: IdempotentResponsesOptions) {}

  /** The first response of a request, or undefined (none kept, or the store is unreachable). */
  async load(input: { tenant: TenantId; requestId: EventId }): Promise<StoredResponse | undefined> {
    const { store, clock, logger } = this.options;
    if (store === undefined) return undefined;
    try {
      return await store.load({ ...input, nowMs: clock.nowMs() });
    } catch (error) {
      logger.warn({ ...input, code: codeOf(error) }, 'stored response unavailable');
      return undefined;
    }
  }

  /** Keeps the response (as the client sees it) for the key's retries. */
  async save(input: { tenant: TenantId; requestId: EventId; result: ExecutionResult }): Promise<void> {
    const { store, clock, logger, ttlMs } = this.options;
    if (store === undefined) return;
    const { tenant, requestId } = input;
    try {
      const outcome = await store.save({ tenant, requestId, result: toStoredResult(input.result), ttlMs, nowMs: clock.nowMs() });
      if (outcome === 'too-large') logger.warn({ tenant, requestId }, 'response too large to keep for Idempotency-Key retries');
    } catch (error) {
      logger.warn({ tenant, requestId, code: codeOf(error) }, 'could not keep the response for Idempotency-Key retries');
    }
  }

  /** Answers a replayed decision: loads the first response and maps it with {@link replayResponse}. */
  async answer(input: {
    tenant: TenantId;
    requestId: EventId;
    decision: Admitted;
    requested: number;
    specs: LimitSpec[];
  }): Promise<EdgeResponse & { outcome: ReplayOutcome }> {
    const stored = await this.load({ tenant: input.tenant, requestId: input.requestId });
    return replayResponse({ decision: input.decision, stored, requested: input.requested, specs: input.specs });
  }
}
