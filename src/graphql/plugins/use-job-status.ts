/**
 * `GET /jobs/<id>`: the status of a deferred job, for the job's own tenant.
 * The caller presents an API key (`Authorization: Bearer tg_<key>`); the job
 * is looked up under that key's tenant only, so another tenant's job answers
 * 404 exactly like an unknown one. Anonymous callers get 401 (the anonymous
 * tenant is shared by every client address, so its jobs are not readable).
 * Answers in `onRequest`, before the GraphQL pipeline; not metered.
 */
import type { Plugin } from 'graphql-yoga';
import { DependencyError, systemClock, type Clock, type Logger } from '../../shared/index.js';
import { ApiKeyIdentifier } from '../identity/identify.js';
import type { KeyStore } from '../identity/key-store.js';
import { readJob, type JobReader } from '../jobs/status.js';

export interface JobStatusOptions {
  jobs: JobReader;
  keyStore: KeyStore;
  logger: Logger;
  /** @default systemClock */
  clock?: Clock;
  /** @default '/jobs/' */
  pathPrefix?: string;
}

export function useJobStatus(options: JobStatusOptions): Plugin {
  const prefix = options.pathPrefix ?? '/jobs/';
  const identifier = new ApiKeyIdentifier({ keyStore: options.keyStore, clock: options.clock ?? systemClock });
  return {
    onRequest: async (payload) => {
      const { request, url, fetchAPI } = payload;
      if (!url.pathname.startsWith(prefix)) return;
      const json = (status: number, body: unknown, headers: Record<string, string> = {}): void =>
        payload.endResponse(new fetchAPI.Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } }));
      if (request.method !== 'GET') {
        json(405, { error: { code: 'METHOD_NOT_ALLOWED', message: 'use GET' } }, { Allow: 'GET' });
        return;
      }
      const identified = await identifier.identify(request.headers.get('authorization'), undefined);
      if (!identified.isOk) {
        json(identified.status, { error: { code: identified.code, message: identified.message } }, identified.status === 401 ? { 'WWW-Authenticate': 'Bearer realm="tollgate"' } : {});
        return;
      }
      const id = url.pathname.slice(prefix.length);
      try {
        const job = await readJob(options.jobs, identified.identity.tenant, id);
        if (job === undefined) json(404, { error: { code: 'JOB_NOT_FOUND', message: 'no such job' } });
        else json(200, { job });
      } catch (error) {
        if (!(error instanceof DependencyError)) throw error;
        options.logger.warn({ code: error.code }, 'job status unavailable');
        json(503, { error: { code: error.code, message: 'job status is unavailable; retry later' } }, { 'Retry-After': '1' });
      }
    },
  };
}
