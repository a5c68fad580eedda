/**
 * Stored responses for Idempotency-Key retries. The decider already makes a
 * retried key one decision and one charge; this keeps what the first attempt
 * answered, so a retry gets the same body instead of an error, and the
 * operation (a mutation's side effects) runs once.
 *
 * What is stored is the result as the client saw it: errors are masked first
 * (an unexpected error's message never becomes replayable text), then kept in
 * their JSON form and sent back verbatim.
 *
 * Redis layout: `{s:<shard>}:t:<tenant>:o:v1:<requestId>` (keys.ts) → JSON
 * `{"v":1,"at":<storedAtMs>,"r":{data?,errors?,extensions?}}`, written once
 * (`SET … NX PX`) with the same lifetime as the decider's request record, so
 * the response never outlives the decision it belongs to.
 */
import { GraphQLError, type ExecutionResult, type GraphQLFormattedError } from 'graphql';
import { maskError } from 'graphql-yoga';
import { idempotentResponseKey, shardOf, type DeciderRedis } from '../../decider/index.js';
import { DependencyError, type EventId, type TenantId } from '../../shared/index.js';

/** A response as the client first received it (JSON-safe). */
export interface StoredResult {
  data?: unknown;
  errors?: GraphQLFormattedError[];
  extensions?: Record<string, unknown>;
}

export interface StoredResponse {
  result: StoredResult;
  /** When the first attempt was stored, ms since the epoch (the API's clock). */
  storedAtMs: number;
}

export type SaveOutcome = 'stored' | 'exists' | 'too-large';

/** Port: where first responses of idempotent requests live. */
export interface ResponseStore {
  /** Keeps the first response; a second save for the same request changes nothing. */
  save(input: { tenant: TenantId; requestId: EventId; result: StoredResult; ttlMs: number; nowMs: number }): Promise<SaveOutcome>;
  load(input: { tenant: TenantId; requestId: EventId }): Promise<StoredResponse | undefined>;
}

/** The message yoga's error masking gives unexpected errors (the same the client saw). */
const UNEXPECTED = 'Unexpected error.';

/** The JSON form of a result as the client receives it: errors masked the way yoga masks them. */
export function toStoredResult(result: ExecutionResult): StoredResult {
  return {
    ...(result.data === undefined ? {} : { data: result.data }),
    ...(result.errors === undefined ? {} : { errors: result.errors.map((error) => (maskError(error, UNEXPECTED, false) as GraphQLError).toJSON()) }),
    ...(result.extensions === undefined ? {} : { extensions: result.extensions }),
  };
}

/** An error that serializes to exactly what was stored (its message, locations, path and extensions). */
class ReplayedGraphQLError extends GraphQLError {
  constructor(private readonly stored: GraphQLFormattedError) {
    super(stored.message, {
      ...(stored.path === undefined ? {} : { path: stored.path }),
      ...(stored.extensions === undefined ? {} : { extensions: stored.extensions }),
    });
  }

  override toJSON(): GraphQLFormattedError {
    return this.stored;
  }
}

/** The stored result as an execution result yoga can send again (same JSON, same HTTP status). */
export function toExecutionResult(stored: StoredResult): ExecutionResult {
  return {
    ...(stored.data === undefined ? {} : { data: stored.data as Record<string, unknown> | null }),
    ...(stored.errors === undefined ? {} : { errors: stored.errors.map((error) => new ReplayedGraphQLError(error)) }),
    ...(stored.extensions === undefined ? {} : { extensions: stored.extensions }),
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses a stored value; anything else (another layout version, damage) reads as absent. */
export function parseStoredResponse(raw: string): StoredResponse | undefined {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (!isRecord(value) || value['v'] !== 1 || typeof value['at'] !== 'number' || !isRecord(value['r'])) return undefined;
  const result = value['r'];
  if (result['errors'] !== undefined && !Array.isArray(result['errors'])) return undefined;
  if (result['extensions'] !== undefined && !isRecord(result['extensions'])) return undefined;
  return { result, storedAtMs: value['at'] };
}

export interface RedisResponseStoreOptions {
  /** The decider's logical shard count (a response lives on its tenant's shard). */
  shardCount: number;
  /** Responses larger than this (UTF-8 bytes of JSON) are not kept; their retries get a 409. @default 262144 */
  maxBytes?: number;
}

/** Responses in the decider's Redis, beside the tenant's other keys. */
export class RedisResponseStore implements ResponseStore {
  private readonly maxBytes: number;

  constructor(
    private readonly redis: DeciderRedis,
    private readonly options: RedisResponseStoreOptions,
  ) {
    this.maxBytes = options.maxBytes ?? 262_144;
  }

  /** @throws DependencyError `REDIS_UNAVAILABLE` when Redis does not answer */
  async save(input: { tenant: TenantId; requestId: EventId; result: StoredResult; ttlMs: number; nowMs: number }): Promise<SaveOutcome> {
    const value = JSON.stringify({ v: 1, at: input.nowMs, r: input.result });
    if (Buffer.byteLength(value, 'utf8') > this.maxBytes) return 'too-large';
    const key = idempotentResponseKey(shardOf(input.tenant, this.options.shardCount), input.tenant, input.requestId);
    try {
      const reply = await this.redis.set(key, value, 'PX', Math.max(1, Math.ceil(input.ttlMs)), 'NX');
      return reply === 'OK' ? 'stored' : 'exists';
    } catch (error) {
      throw new DependencyError('REDIS_UNAVAILABLE', 'could not store the response of an idempotent request', { cause: error });
    }
  }

  /** @throws DependencyError `REDIS_UNAVAILABLE` when Redis does not answer */
  async load(input: { tenant: TenantId; requestId: EventId }): Promise<StoredResponse | undefined> {
    const key = idempotentResponseKey(shardOf(input.tenant, this.options.shardCount), input.tenant, input.requestId);
    let raw: string | null;
    try {
      raw = await this.redis.get(key);
    } catch (error) {
      throw new DependencyError('REDIS_UNAVAILABLE', 'could not read the response of an idempotent request', { cause: error });
    }
    return raw === null ? undefined : parseStoredResponse(raw);
  }
}
