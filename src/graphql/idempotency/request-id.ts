/**
 * Request ids of operations. With an Idempotency-Key the id is deterministic,
 * so a retry is the same request to the decider, the deferrer and the response
 * store; without one it is random. Pure apart from the random id.
 */
import { createHash, randomUUID } from 'node:crypto';
import { parseEventId, type EventId } from '../../shared/index.js';

const IDEMPOTENCY_KEY = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** Whether an `Idempotency-Key` header value is acceptable: 1-64 characters of a-z, 0-9, ".", "_", "-", not starting with a punctuation mark. */
export function isIdempotencyKey(raw: string): boolean {
  return IDEMPOTENCY_KEY.test(raw);
}

/** A short digest of what was asked, so an Idempotency-Key reused for another operation is a new request. */
function requestFingerprint(input: { query: string; operationName: string; variables: unknown }): string {
  return createHash('sha256')
    .update(`${input.operationName}\n${input.query}\n${JSON.stringify(input.variables ?? {})}`)
    .digest('hex')
    .slice(0, 16);
}

/**
 * The request id of one operation: `i-<key>.<batch index>.<fingerprint>` with an
 * Idempotency-Key (the tenant scopes it in every store), else `r-<uuid>`.
 * @throws ValidationError when the id is not a valid event id
 */
export function operationRequestId(input: {
  idempotencyKey: string | null;
  /** Position of the operation in its batch (0 when not batched). */
  batchIndex: number;
  query: string;
  operationName: string;
  variables: unknown;
}): EventId {
  if (input.idempotencyKey === null) return parseEventId(`r-${randomUUID()}`);
  return parseEventId(`i-${input.idempotencyKey}.${input.batchIndex}.${requestFingerprint(input)}`);
}
