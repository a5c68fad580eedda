/**
 * `GET /jobs/<id>`: the status of a deferred job, for the job's own tenant.
 * The caller presents an API key (`Authorization: Bearer tg_<key>`); the job
 * is looked up under that key's tenant only, so another tenant's job answers
 * 404 exactly like an unknown one. Anonymous callers get 401 (the anonymous
 * tenant is shared by every client address, so its jobs are not readable).
 * Answers in `onRequest`, before the GraphQL pipeline; not metered, but
 * limited per key in this process (429 `RATE_LIMITED` with Retry-After) and
 * served from memory once the job is finished (`src/jobs/finished-cache.ts`).
 */
import type { Plugin } from 'graphql-yoga';
import { DependencyError, systemClock, type Clock, type Logger } from '../../shared/index.js';
import { ApiKeyIdentifier } from '../identity/identify.js';
import { socketClientIp } from '../identity/client-address.js';
import type { KeyStore } from '../identity/key-store.js';
import { FinishedJobCache } from '../../jobs/index.js';
import { KeyRateLimiter } from '../local-limiter.js';
import { requestPath } from './request-path.js';
import { readJob, type JobReader } from '../../jobs/index.js';

export interface JobStatusOptions {
  jobs: JobReader;
  keyStore: KeyStore;
  logger: Logger;
  /** @default systemClock */
  clock?: Clock;
  /** @default '/jobs/' */
  pathPrefix?: string;
  /** Status reads per second per API key in this process (burst twice that). @default 10 */
  readsPerSecondPerKey?: number;
  /** How long a finished job is served from memory, ms. @default 300 000 */
  finishedCacheTtlMs?: number;
  /** The client's address (its allowance of unknown API keys). @default the socket's remote address */
  clientIp?: (request: Request, serverContext: Record<string, unknown>) => string | undefined;
  /** Unknown API keys a client address may present per second before uncached keys get 429. @default 5 */
  unknownKeysPerSecond?: number;
}

type OnRequestPayload = Parameters<NonNullable<Plugin['onRequest']>>[0];

export function useJobStatus(options: JobStatusOptions): Plugin {
  const prefix = options.pathPrefix ?? '/jobs/';
  const clock = options.clock ?? systemClock;
  const identifier = new ApiKeyIdentifier({
    keyStore: options.keyStore,
    clock,
    ...(options.unknownKeysPerSecond === undefined ? {} : { unknownKeysPerSecond: options.unknownKeysPerSecond }),
  });
  const clientIpOf = options.clientIp ?? socketClientIp;
  const limiter = new KeyRateLimiter({ perSecond: options.readsPerSecondPerKey ?? 10, clock });
  const finished = new FinishedJobCache({
    clock,
    ...(options.finishedCacheTtlMs === undefined ? {} : { ttlMs: options.finishedCacheTtlMs }),
  });
  const answer = async (payload: OnRequestPayload): Promise<void> => {
    const { request, url, fetchAPI, serverContext } = payload;
    const json = (status: number, body: unknown, headers: Record<string, string> = {}): void =>
      payload.endResponse(
        new fetchAPI.Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } }),
      );
    if (request.method !== 'GET') {
      json(405, { error: { code: 'METHOD_NOT_ALLOWED', message: 'use GET' } }, { Allow: 'GET' });
      return;
    }
    const identified = await identifier.identify(request.headers.get('authorization'), clientIpOf(request, serverContext));
    if (!identified.isOk) {
      json(
        identified.status,
        { error: { code: identified.code, message: identified.message } },
        {
          ...(identified.status === 401 ? { 'WWW-Authenticate': 'Bearer realm="tollgate"' } : {}),
          ...(identified.retryAfterMs === undefined
            ? {}
            : { 'Retry-After': String(Math.max(1, Math.ceil(identified.retryAfterMs / 1_000))) }),
        },
      );
      return;
    }
    const { tenant, keyId } = identified.identity;
    const allowance = limiter.take(`${tenant}\n${keyId}`);
    if (!allowance.isAllowed) {
      const retryAfterS = Math.max(1, Math.ceil(allowance.retryAfterMs / 1_000));
      json(
        429,
        { error: { code: 'RATE_LIMITED', message: `too many job status reads with this key; retry in ${retryAfterS} s` } },
        { 'Retry-After': String(retryAfterS) },
      );
      return;
    }
    const id = url.pathname.slice(prefix.length);
    const kept = finished.get(tenant, id);
    if (kept !== undefined) {
      json(200, { job: kept });
      return;
    }
    try {
      const job = await readJob(options.jobs, tenant, id);
      if (job === undefined) json(404, { error: { code: 'JOB_NOT_FOUND', message: 'no such job' } });
      else {
        finished.offer(tenant, job);
        json(200, { job });
      }
    } catch (error) {
      if (!(error instanceof DependencyError)) throw error;
      options.logger.warn({ code: error.code }, 'job status unavailable');
      json(503, { error: { code: error.code, message: 'job status is unavailable; retry later' } }, { 'Retry-After': '1' });
    }
  };
  // synchronous for every other request (no URL object, no promise)
  return { onRequest: (payload) => (requestPath(payload.request.url).startsWith(prefix) ? answer(payload) : undefined) };
}
