/**
 * Failures. A denial is a value (a Decision), never an error; these classes
 * are for things that went wrong. Every failure has a stable `code` that edges
 * map once: GraphQL `extensions.code`, Temporal `ApplicationFailure.type`, CLI
 * exit code. Never branch on `message`.
 */

/** Every stable error code tollgate emits. */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'INVALID_ID'
  | 'INVALID_INPUT'
  | 'ACCOUNT_INVALID'
  | 'NOT_FOUND'
  | 'LEDGER_CONFLICT'
  | 'CONFLICT'
  | 'REDIS_UNAVAILABLE'
  | 'TEMPORAL_UNAVAILABLE'
  | 'DYNAMODB_UNAVAILABLE'
  | 'UPSTREAM_UNAVAILABLE'
  | 'DEPENDENCY_FAILED'
  | 'INVARIANT_VIOLATED'
  | 'JOB_QUEUE_FULL'
  | 'OVERLOADED';

export interface AppErrorOptions {
  cause?: unknown;
  /** Structured, non-secret facts about the failure (ids, counts). */
  details?: Record<string, unknown>;
}

/** Base of every failure: a code, whether a retry can help, and the cause. */
export abstract class AppError extends Error {
  abstract readonly code: ErrorCode;
  abstract readonly retryable: boolean;
  readonly details: Record<string, unknown>;

  constructor(message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.details = options.details ?? {};
  }
}

/** Input that can never succeed as given (bad id, bad config, bad argument). */
export class ValidationError extends AppError {
  readonly retryable = false;
  constructor(
    readonly code: 'CONFIG_INVALID' | 'INVALID_ID' | 'INVALID_INPUT' | 'ACCOUNT_INVALID',
    message: string,
    options?: AppErrorOptions,
  ) {
    super(message, options);
  }
}

/** A thing that was asked for by id and does not exist. */
export class NotFoundError extends AppError {
  readonly code = 'NOT_FOUND';
  readonly retryable = false;
}

/** A write that collides with different data already stored under the same key. */
export class ConflictError extends AppError {
  readonly retryable = false;
  constructor(
    readonly code: 'LEDGER_CONFLICT' | 'CONFLICT',
    message: string,
    options?: AppErrorOptions,
  ) {
    super(message, options);
  }
}

/** A dependency (Redis, Temporal, DynamoDB, a gateway's upstream) failed or timed out; a retry may help. */
export class DependencyError extends AppError {
  readonly retryable = true;
  constructor(
    readonly code: 'REDIS_UNAVAILABLE' | 'TEMPORAL_UNAVAILABLE' | 'DYNAMODB_UNAVAILABLE' | 'UPSTREAM_UNAVAILABLE' | 'DEPENDENCY_FAILED',
    message: string,
    options?: AppErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * A bounded resource is full (e.g. a tenant's queue of deferred jobs): nothing
 * was written; the same call may succeed once the resource drains.
 */
export class CapacityError extends AppError {
  readonly code = 'JOB_QUEUE_FULL';
  readonly retryable = true;
}

/**
 * This process has as much of some work in hand as it takes (e.g. its lane of deferral starts):
 * nothing was done; the same call may succeed shortly (the edge answers 503 `OVERLOADED`, Retry-After).
 */
export class OverloadedError extends AppError {
  readonly code = 'OVERLOADED';
  readonly retryable = true;
}

/** Something that must never happen did (a malformed script reply, a broken invariant). */
export class InvariantError extends AppError {
  readonly code = 'INVARIANT_VIOLATED';
  readonly retryable = false;
}

/** Codes that Temporal must never retry (they cannot succeed on a retry). */
export const NON_RETRYABLE_CODES: readonly ErrorCode[] = [
  'CONFIG_INVALID',
  'INVALID_ID',
  'INVALID_INPUT',
  'ACCOUNT_INVALID',
  'NOT_FOUND',
  'LEDGER_CONFLICT',
  'CONFLICT',
  'INVARIANT_VIOLATED',
];

/** True for our own failures (as opposed to programming errors and foreign throws). */
export function isAppError(error: unknown): error is AppError {
  return error instanceof AppError;
}
