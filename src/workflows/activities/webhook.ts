/**
 * Signed webhook POSTs, the one way tollgate tells a tenant something
 * (threshold warnings, finished deferred jobs). The body is JSON; headers:
 * `Idempotency-Key` (the same on every attempt of one notice: receivers dedupe
 * on it) and `Tollgate-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
 * Redirects are not followed. The URL is never put in an error message (it
 * may carry a token in its query), and the secret never leaves this module.
 */
import { createHmac } from 'node:crypto';
import { DependencyError, type Clock } from '../../shared/index.js';

/**
 * The `Tollgate-Signature` header value: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
 * Receivers recompute it and reject stale timestamps.
 */
export function signWebhook(input: { secret: string; timestampSeconds: number; body: string }): string {
  const digest = createHmac('sha256', input.secret).update(`${input.timestampSeconds}.${input.body}`).digest('hex');
  return `t=${input.timestampSeconds},v1=${digest}`;
}

/**
 * POSTs one signed notice and resolves when the receiver accepted it (2xx).
 * @throws DependencyError `DEPENDENCY_FAILED` on a non-2xx answer, a timeout or a network failure (retry)
 */
export async function postSignedWebhook(input: {
  url: string;
  secret: string;
  idempotencyKey: string;
  body: string;
  timeoutMs: number;
  clock: Clock;
  /** What is sent, for error messages (e.g. `warning webhook of acme`). */
  what: string;
}): Promise<void> {
  const signature = signWebhook({ secret: input.secret, timestampSeconds: Math.floor(input.clock.nowMs() / 1000), body: input.body });
  let status: number;
  try {
    const response = await fetch(input.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': input.idempotencyKey, 'tollgate-signature': signature },
      body: input.body,
      redirect: 'manual',
      signal: AbortSignal.timeout(input.timeoutMs),
    });
    status = response.status;
    await response.arrayBuffer().catch(() => undefined);
  } catch (error) {
    throw new DependencyError('DEPENDENCY_FAILED', `${input.what} did not answer`, { cause: error });
  }
  if (status < 200 || status > 299) {
    throw new DependencyError('DEPENDENCY_FAILED', `${input.what} answered ${status}`, { details: { status } });
  }
}
