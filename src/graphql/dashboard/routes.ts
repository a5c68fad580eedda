/**
 * `/dashboard` on the API's port: the built page (security headers on every answer; hashed assets
 * immutable, index.html no-cache; gzip or brotli when the client takes it) and `/dashboard/session`
 * (POST: sign in with an API key or admin token → session cookie; GET: the page's session and CSRF
 * token; DELETE: sign out). Everything else goes to `next` (the admin and tenant APIs).
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { normalizeAddress, type Clock, type Logger, type TrustedProxies } from '../../shared/index.js';
import { KeyRateLimiter } from '../local-limiter.js';
import { isSameOrigin } from './cookie-auth.js';
import { SECURITY_HEADERS } from './headers.js';
import { CSRF_HEADER, DashboardSessions, SESSION_COOKIE, sessionIdOf } from './sessions.js';
import { loadDashboard, type StaticFile } from './static-files.js';

export interface DashboardRouteOptions {
  sessions: DashboardSessions;
  dir: string;
  logger: Logger;
  clock: Clock;
  /** Proxies whose `X-Forwarded-Proto: https` makes the cookie Secure. */
  trustedProxies: TrustedProxies;
  /** Failed sign-ins per second per client address (burst twice that) before sign-ins get 429. @default 2 */
  signInsPerSecond?: number;
}

const PREFIX = '/dashboard';
const MAX_SIGN_IN_BYTES = 4_096;

function send(res: ServerResponse, status: number, body: string | Buffer, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(body);
}

const errorBody = (code: string, message: string): string => JSON.stringify({ error: { code, message } });

function readBody(req: IncomingMessage): Promise<string> {
  const stream = (req as IncomingMessage & { body?: Readable }).body ?? req;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_SIGN_IN_BYTES) chunks.push(chunk);
    });
    stream.on('end', () => resolve(size > MAX_SIGN_IN_BYTES ? '' : Buffer.concat(chunks).toString('utf8')));
    stream.on('error', reject);
  });
}

function sendFile(req: IncomingMessage, res: ServerResponse, file: StaticFile, isImmutable: boolean): void {
  const accepts = String(req.headers['accept-encoding'] ?? '');
  const [body, encoding] =
    file.brotli !== undefined && /\bbr\b/.test(accepts)
      ? [file.brotli, 'br']
      : file.gzip !== undefined && /\bgzip\b/.test(accepts)
        ? [file.gzip, 'gzip']
        : [file.body, undefined];
  res.writeHead(200, {
    ...SECURITY_HEADERS,
    'content-type': file.type,
    'content-length': String(body.length),
    'cache-control': isImmutable ? 'public, max-age=31536000, immutable' : 'no-cache',
    vary: 'Accept-Encoding',
    ...(encoding === undefined ? {} : { 'content-encoding': encoding }),
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

export class DashboardRoutes {
  private files: Map<string, StaticFile> | undefined;
  private readonly signIns: KeyRateLimiter;

  constructor(private readonly options: DashboardRouteOptions) {
    this.signIns = new KeyRateLimiter({ perSecond: options.signInsPerSecond ?? 2, clock: options.clock });
  }

  /** `/dashboard…` here, everything else to `next`. */
  route(next: RequestListener): RequestListener {
    return (req, res) => {
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      if (path !== PREFIX && !path.startsWith(`${PREFIX}/`)) {
        next(req, res);
        return;
      }
      this.answer(req, res, path).catch((error: unknown) => {
        this.options.logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'dashboard request failed');
        if (!res.headersSent)
          send(res, 503, errorBody('UNAVAILABLE', 'the dashboard cannot answer right now; retry later'), { 'retry-after': '1' });
        else res.destroy();
      });
    };
  }

  private async answer(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (path === `${PREFIX}/session`) return this.session(req, res);
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return send(res, 405, errorBody('METHOD_NOT_ALLOWED', 'use GET'), { allow: 'GET, HEAD' });
    this.files ??= loadDashboard(this.options.dir);
    if (this.files === undefined) {
      return send(res, 503, 'The dashboard is not built: run `npx vite build --config dashboard/vite.config.ts` (npm start does it).\n', {
        'content-type': 'text/plain; charset=utf-8',
      });
    }
    const relative = path === PREFIX || path === `${PREFIX}/` ? 'index.html' : path.slice(PREFIX.length + 1);
    const file = this.files.get(relative);
    if (file === undefined || relative.includes('..')) return send(res, 404, errorBody('NOT_FOUND', 'no such dashboard file'));
    sendFile(req, res, file, relative.startsWith('assets/'));
  }

  private isSecure(req: IncomingMessage): boolean {
    if ((req.socket as { encrypted?: boolean }).encrypted === true) return true;
    const peer = normalizeAddress(req.socket.remoteAddress ?? '');
    return peer !== undefined && this.options.trustedProxies.has(peer) && req.headers['x-forwarded-proto'] === 'https';
  }

  private cookie(req: IncomingMessage, value: string, maxAgeS: number): string {
    return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${this.isSecure(req) ? '; Secure' : ''}`;
  }

  private async session(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { sessions } = this.options;
    const id = sessionIdOf(req.headers.cookie);
    const record = id === undefined ? undefined : await sessions.get(id);
    if (req.method === 'GET') {
      if (record === undefined) return send(res, 401, errorBody('SESSION_REQUIRED', 'sign in'));
      return send(res, 200, JSON.stringify(sessions.viewOf(record)));
    }
    const origin = req.headers.origin ?? null;
    if (!isSameOrigin(origin, req.headers.host ?? null))
      return send(res, 403, errorBody('ORIGIN_REJECTED', 'sign-in and sign-out only from this origin'));
    if (req.method === 'DELETE') {
      if (id !== undefined && record !== undefined) {
        const csrf = req.headers[CSRF_HEADER];
        if (!DashboardSessions.isCsrfValid(record, typeof csrf === 'string' ? csrf : null)) {
          return send(res, 403, errorBody('CSRF_REJECTED', 'sign-out needs the session CSRF token'));
        }
        await sessions.signOut(id);
      }
      return send(res, 204, '', { 'set-cookie': this.cookie(req, '', 0) });
    }
    if (req.method !== 'POST')
      return send(res, 405, errorBody('METHOD_NOT_ALLOWED', 'use GET, POST or DELETE'), { allow: 'GET, POST, DELETE' });
    return this.signIn(req, res);
  }

  private async signIn(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const address = req.socket.remoteAddress ?? 'unknown';
    const allowance = this.signIns.check(address);
    if (!allowance.isAllowed) {
      const retryAfterS = Math.max(1, Math.ceil(allowance.retryAfterMs / 1_000));
      return send(res, 429, errorBody('RATE_LIMITED', `too many sign-ins; retry in ${retryAfterS} s`), {
        'retry-after': String(retryAfterS),
      });
    }
    let credential: unknown;
    try {
      credential = (JSON.parse(await readBody(req)) as { credential?: unknown }).credential;
    } catch {
      credential = undefined;
    }
    if (typeof credential !== 'string' || credential.length > 200) {
      return send(res, 400, errorBody('INVALID_INPUT', 'the body must be {"credential": "<API key or admin token>"}'));
    }
    const session = await this.options.sessions.signIn(credential.trim());
    if (session === null) {
      this.signIns.take(address);
      return send(res, 401, errorBody('SIGN_IN_FAILED', 'this API key or admin token is not valid'));
    }
    send(res, 200, JSON.stringify(session.view), { 'set-cookie': this.cookie(req, session.id, 12 * 3_600) });
  }
}
