/**
 * Cookie authentication of the usage and admin APIs for the dashboard: a request without an
 * Authorization header but with a session cookie is the session's tenant (usage API) or admin token
 * (admin API), scoped exactly like the key or token the session came from. Every POST through a cookie
 * needs the session's CSRF token in `X-CSRF-Token` and an Origin of this host (SameSite=Strict already
 * keeps the cookie off cross-site requests; this is the second lock).
 */
import type { IdentifyResult } from '../identity/identify.js';
import { CSRF_HEADER, DashboardSessions, sessionIdOf, type SessionRecord } from './sessions.js';

/** A cookie request refused: the usage API answers it as it answers a refused key. */
export interface SessionRefusal {
  isOk: false;
  code: string;
  status: 401 | 403;
  message: string;
  retryAfterMs?: number;
}

/** Whether the request's Origin is this host's (a request without one is not accepted for a change). */
export function isSameOrigin(origin: string | null, host: string | null): boolean {
  if (origin === null || host === null) return false;
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}

async function liveSession(sessions: DashboardSessions, request: Request): Promise<{ record: SessionRecord } | SessionRefusal | undefined> {
  if (request.headers.get('authorization') !== null) return undefined;
  const id = sessionIdOf(request.headers.get('cookie'));
  if (id === undefined) return undefined;
  const record = await sessions.get(id);
  if (record === undefined)
    return { isOk: false, code: 'SESSION_ENDED', status: 401, message: 'the dashboard session has ended; sign in again' };
  const isChange = request.method !== 'GET' && request.method !== 'HEAD';
  if (
    isChange &&
    !(
      DashboardSessions.isCsrfValid(record, request.headers.get(CSRF_HEADER)) &&
      isSameOrigin(request.headers.get('origin'), new URL(request.url).host)
    )
  ) {
    return {
      isOk: false,
      code: 'CSRF_REJECTED',
      status: 403,
      message: 'a change through the dashboard session needs its CSRF token and this origin',
    };
  }
  return { record };
}

/** For the usage API: the session's tenant identity, a refusal, or undefined (no cookie, or a key was sent: key auth). */
export function tenantFromSession(sessions: DashboardSessions): (request: Request) => Promise<IdentifyResult | SessionRefusal | undefined> {
  return async (request) => {
    const session = await liveSession(sessions, request);
    if (session === undefined || !('record' in session)) return session;
    const { record } = session;
    if (record.kind !== 'tenant')
      return { isOk: false, code: 'SESSION_NOT_TENANT', status: 403, message: 'an operator session has no tenant usage' };
    return sessions.tenantIdentity(record);
  };
}

/** For the admin API: the session's admin token, null (refused: told nothing more), or undefined (no cookie: bearer auth). */
export function operatorFromSession(sessions: DashboardSessions): (request: Request) => Promise<{ tokenId: string } | null | undefined> {
  return async (request) => {
    const session = await liveSession(sessions, request);
    if (session === undefined) return undefined;
    if (!('record' in session) || session.record.kind !== 'operator') return null;
    return sessions.operatorOf(session.record);
  };
}
