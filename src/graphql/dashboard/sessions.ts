/**
 * Dashboard sessions: an API key (tenant) or an admin token (operator) is exchanged once for a random
 * session id, sent back only as an HttpOnly SameSite=Strict cookie. Redis holds, under the id's sha256,
 * who the session is (tenant and key id, or admin token id), the sha256 of the credential it came from
 * (what the config table already stores: never the credential itself), and its CSRF token. Sliding TTL,
 * absolute end; sign-out deletes it, and every use checks the credential again (revoked key or token,
 * rotated key past its overlap, suspended tenant: the session ends there).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { DeciderRedis } from '../../decider/index.js';
import { parseKeyId, parsePlanId, parseTenantId, type Clock } from '../../shared/index.js';
import { hashApiKey, isWellFormedApiKey, keyFingerprint } from '../identity/api-key.js';
import type { IdentifyResult } from '../identity/identify.js';
import type { KeyStore } from '../identity/key-store.js';

export const SESSION_COOKIE = 'tg_session';
export const CSRF_HEADER = 'x-csrf-token';

/** Admin tokens by sha256 (the admin store's lookup). */
export interface AdminTokenLookup {
  findToken(hash: Buffer): Promise<{ tokenId: string; isRevoked: boolean } | undefined>;
}

export interface SessionSettings {
  /** Idle time after which a session ends, ms. @default 30 min */
  idleMs?: number;
  /** Age at which a session ends whatever its use, ms. @default 12 h */
  absoluteMs?: number;
}

type SessionWho =
  { kind: 'tenant'; tenant: string; keyId: string; keyHash: string } | { kind: 'operator'; tokenId: string; tokenHash: string };

export type SessionRecord = SessionWho & { csrf: string; createdAtMs: number };

/** What the page may know of its session (no hash, no id). */
export interface SessionView {
  kind: 'tenant' | 'operator';
  /** The tenant, or the admin token's id. */
  name: string;
  csrf: string;
  expiresAt: string;
}

const ADMIN_TOKEN = /^tga_[A-Za-z0-9_-]{43}$/;
const sha256Hex = (value: string): string => createHash('sha256').update(value, 'utf8').digest('hex');

/** The session id in a Cookie header, or undefined. */
export function sessionIdOf(cookieHeader: string | null | undefined): string | undefined {
  for (const part of (cookieHeader ?? '').split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name === SESSION_COOKIE) {
      const value = rest.join('=');
      return /^[A-Za-z0-9_-]{43}$/.test(value) ? value : undefined;
    }
  }
  return undefined;
}

const sameSecret = (a: string, b: string): boolean => {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
};

export class DashboardSessions {
  private readonly idleMs: number;
  private readonly absoluteMs: number;

  constructor(
    private readonly deps: { redis: DeciderRedis; keyStore: KeyStore; adminTokens: AdminTokenLookup; clock: Clock },
    settings: SessionSettings = {},
  ) {
    this.idleMs = settings.idleMs ?? 30 * 60_000;
    this.absoluteMs = settings.absoluteMs ?? 12 * 3_600_000;
  }

  get idleSeconds(): number {
    return Math.floor(this.idleMs / 1_000);
  }

  private redisKey(id: string): string {
    return `tg:dash:session:${sha256Hex(id)}`;
  }

  /** Exchanges a credential for a new session; null when it is no valid key or token (nothing says which). */
  async signIn(credential: string): Promise<{ id: string; view: SessionView } | null> {
    const who = await this.checkCredential(credential);
    if (who === null) return null;
    const id = randomBytes(32).toString('base64url');
    const record: SessionRecord = { ...who, csrf: randomBytes(32).toString('base64url'), createdAtMs: this.deps.clock.nowMs() };
    await this.deps.redis.set(this.redisKey(id), JSON.stringify(record), 'PX', this.idleMs);
    return { id, view: this.viewOf(record) };
  }

  private async checkCredential(credential: string): Promise<SessionWho | null> {
    if (ADMIN_TOKEN.test(credential)) {
      const tokenHash = createHash('sha256').update(credential, 'utf8').digest();
      const token = await this.deps.adminTokens.findToken(tokenHash);
      return token === undefined || token.isRevoked
        ? null
        : { kind: 'operator', tokenId: token.tokenId, tokenHash: tokenHash.toString('hex') };
    }
    if (!isWellFormedApiKey(credential)) return null;
    const hash = hashApiKey(credential);
    const who: SessionWho = { kind: 'tenant', tenant: '', keyId: '', keyHash: hash.toString('hex') };
    const identity = await this.tenantIdentity(who);
    return identity.isOk ? { ...who, tenant: identity.identity.tenant, keyId: identity.identity.keyId } : null;
  }

  /** The live session of an id (its idle time restarted), or undefined: unknown, expired, or past its absolute end. */
  async get(id: string): Promise<SessionRecord | undefined> {
    const key = this.redisKey(id);
    const raw = await this.deps.redis.get(key);
    if (raw === null) return undefined;
    const record = JSON.parse(raw) as SessionRecord;
    const nowMs = this.deps.clock.nowMs();
    if (nowMs - record.createdAtMs >= this.absoluteMs) {
      await this.deps.redis.del(key);
      return undefined;
    }
    await this.deps.redis.pexpire(key, Math.min(this.idleMs, record.createdAtMs + this.absoluteMs - nowMs));
    return record;
  }

  async signOut(id: string): Promise<void> {
    await this.deps.redis.del(this.redisKey(id));
  }

  viewOf(record: SessionRecord): SessionView {
    const expiresAtMs = Math.min(this.deps.clock.nowMs() + this.idleMs, record.createdAtMs + this.absoluteMs);
    return {
      kind: record.kind,
      name: record.kind === 'tenant' ? record.tenant : record.tokenId,
      csrf: record.csrf,
      expiresAt: new Date(expiresAtMs).toISOString(),
    };
  }

  /** The key behind a tenant session checked again now: revoked, past its overlap or suspended ends it. */
  async tenantIdentity(who: Extract<SessionWho, { kind: 'tenant' }>): Promise<IdentifyResult> {
    const hash = Buffer.from(who.keyHash, 'hex');
    const record = await this.deps.keyStore.findByHash(hash);
    const ended = (code: 'API_KEY_REVOKED' | 'TENANT_SUSPENDED', status: 401 | 403): IdentifyResult => ({
      isOk: false,
      code,
      status,
      message: 'the dashboard session has ended; sign in again',
    });
    if (record === undefined || record.isRevoked) return ended('API_KEY_REVOKED', 401);
    if (record.expiresAtMs !== undefined && record.expiresAtMs <= this.deps.clock.nowMs()) return ended('API_KEY_REVOKED', 401);
    if (who.tenant !== '' && (record.tenant !== who.tenant || record.keyId !== who.keyId)) return ended('API_KEY_REVOKED', 401);
    if (this.deps.keyStore.isSuspended?.(record.tenant) === true) return ended('TENANT_SUSPENDED', 403);
    return {
      isOk: true,
      identity: {
        kind: 'apiKey',
        tenant: parseTenantId(record.tenant),
        keyId: parseKeyId(record.keyId),
        planId: parsePlanId(record.planId),
        keyFingerprint: keyFingerprint(hash),
        clientIp: undefined,
      },
    };
  }

  /** The admin token behind an operator session checked again now; null when it was revoked. */
  async operatorOf(who: Extract<SessionWho, { kind: 'operator' }>): Promise<{ tokenId: string } | null> {
    const token = await this.deps.adminTokens.findToken(Buffer.from(who.tokenHash, 'hex'));
    return token === undefined || token.isRevoked || token.tokenId !== who.tokenId ? null : { tokenId: token.tokenId };
  }

  /** Whether a state-changing request carries the session's CSRF token. */
  static isCsrfValid(record: SessionRecord, header: string | null): boolean {
    return header !== null && sameSecret(record.csrf, header);
  }
}
