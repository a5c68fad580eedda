/**
 * Who is calling: `Authorization: Bearer tg_<key>` → sha256 → key record
 * (compared in constant time) → tenant, key id and plan. Anonymous callers get
 * the configured per-IP plan or a 401. Lookups are cached for a short time and
 * the whole cache is dropped when the key store's version changes, so a
 * revocation takes effect on the next request. Unknown keys are cached too
 * (bounded), so a flood of one junk key does not reach the store; a client
 * address that presents more unknown keys than `unknownKeysPerSecond` (fresh
 * random keys, which no cache can hold) gets 429 `TOO_MANY_UNKNOWN_KEYS` for
 * keys not in the cache, without a store lookup, until its allowance refills.
 * Keys already cached, valid or not, are answered as before, and so are keys
 * this instance has found valid before (remembered by hash, bounded): behind a
 * proxy that hides client addresses, a flood of random keys delays only keys
 * never seen here, not the ones in use.
 */
import { timingSafeEqual } from 'node:crypto';
import { parseIpHex } from '../../decider/index.js';
import {
  DependencyError,
  parseKeyId,
  parsePlanId,
  parseTenantId,
  type Clock,
  type KeyId,
  type PlanId,
  type TenantId,
} from '../../shared/index.js';
import { KeyRateLimiter } from '../local-limiter.js';
import { hashApiKey, isWellFormedApiKey, keyFingerprint } from './api-key.js';
import type { ApiKeyRecord, KeyStore } from './key-store.js';

export interface Identity {
  kind: 'apiKey' | 'anonymous';
  tenant: TenantId;
  keyId: KeyId;
  planId: PlanId;
  /** For logs: a fingerprint of the key's hash (never the key). */
  keyFingerprint: string | null;
  clientIp: string | undefined;
}

export type IdentifyFailureCode =
  | 'API_KEY_REQUIRED'
  | 'API_KEY_INVALID'
  | 'API_KEY_REVOKED'
  | 'TENANT_SUSPENDED'
  | 'INVALID_ID'
  | 'KEY_STORE_UNAVAILABLE'
  | 'TOO_MANY_UNKNOWN_KEYS';

export type IdentifyResult =
  | { isOk: true; identity: Identity }
  | {
      isOk: false;
      code: IdentifyFailureCode;
      status: 400 | 401 | 403 | 429 | 503;
      message: string;
      /** When to try again (429 and 503), ms. */
      retryAfterMs?: number;
    };

/** Anonymous traffic: refused, or metered under one tenant with a per-IP plan. */
export type AnonymousPolicy = { kind: 'reject' } | { kind: 'ip-plan'; tenant: string; planId: string };

export interface IdentifierOptions {
  keyStore: KeyStore;
  clock: Clock;
  /** @default { kind: 'reject' } */
  anonymous?: AnonymousPolicy;
  /** How long a lookup is trusted (if the store's version does not change first), in ms. @default 30000 */
  cacheTtlMs?: number;
  /** Most cached lookups (known and unknown keys). @default 10000 */
  maxCacheEntries?: number;
  /** Unknown keys a client address may present per second (burst twice that) before uncached keys are refused. @default 5 */
  unknownKeysPerSecond?: number;
}

interface CacheEntry {
  record: ApiKeyRecord | null;
  expiresAtMs: number;
}

const BEARER = /^Bearer +(\S+) *$/i;
const ANONYMOUS_KEY_ID = 'anonymous';

const STATUS: Record<IdentifyFailureCode, 400 | 401 | 403 | 429 | 503> = {
  API_KEY_REQUIRED: 401,
  API_KEY_INVALID: 401,
  API_KEY_REVOKED: 401,
  TENANT_SUSPENDED: 403,
  INVALID_ID: 400,
  KEY_STORE_UNAVAILABLE: 503,
  TOO_MANY_UNKNOWN_KEYS: 429,
};

function failure(code: IdentifyFailureCode, message: string, retryAfterMs?: number): IdentifyResult {
  return { isOk: false, code, status: STATUS[code], message, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };
}

/** Most key hashes remembered as known to the store. */
const MAX_KNOWN_HASHES = 100_000;

/** The bucket of requests whose client address is unknown (they share one allowance). */
const UNKNOWN_ADDRESS = 'unknown-address';

export class ApiKeyIdentifier {
  private readonly cache = new Map<string, CacheEntry>();
  private cacheVersion: number;
  private readonly anonymous: { tenant: TenantId; planId: PlanId; keyId: KeyId } | null;
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  /** Unknown keys per client address. */
  private readonly unknownKeys: KeyRateLimiter;
  /** Hashes (base64) of keys the store has returned a record for: never held back by `unknownKeys`. */
  private readonly knownHashes = new Set<string>();

  /** @throws ValidationError `INVALID_ID` for a bad anonymous tenant or plan id */
  constructor(private readonly options: IdentifierOptions) {
    const anonymous = options.anonymous ?? { kind: 'reject' };
    this.anonymous =
      anonymous.kind === 'reject'
        ? null
        : { tenant: parseTenantId(anonymous.tenant), planId: parsePlanId(anonymous.planId), keyId: parseKeyId(ANONYMOUS_KEY_ID) };
    this.ttlMs = options.cacheTtlMs ?? 30_000;
    this.maxEntries = options.maxCacheEntries ?? 10_000;
    this.cacheVersion = options.keyStore.version();
    this.unknownKeys = new KeyRateLimiter({ perSecond: options.unknownKeysPerSecond ?? 5, clock: options.clock });
  }

  /** Identifies a request from its Authorization header and client address. */
  async identify(authorization: string | null, clientIp: string | undefined): Promise<IdentifyResult> {
    if (authorization === null || authorization === '') return this.identifyAnonymous(clientIp);
    const token = BEARER.exec(authorization)?.[1];
    if (token === undefined || !isWellFormedApiKey(token)) {
      return failure('API_KEY_INVALID', 'the Authorization header must be `Bearer tg_<key>` with a valid key');
    }
    const hash = hashApiKey(token);
    let record: ApiKeyRecord | null;
    try {
      const found = await this.lookup(hash, clientIp ?? UNKNOWN_ADDRESS);
      if (found !== null && 'retryAfterMs' in found) {
        return failure('TOO_MANY_UNKNOWN_KEYS', 'too many unknown API keys from this address; retry later', found.retryAfterMs);
      }
      record = found;
    } catch (error) {
      // A key that was never seen cannot be checked while the key store is down: refuse it, retryably.
      if (error instanceof DependencyError)
        return failure('KEY_STORE_UNAVAILABLE', 'API keys cannot be checked right now; retry later', 1_000);
      throw error;
    }
    // The store matched on the hash; compare again in constant time so no code
    // path's timing depends on how much of a guessed hash matched.
    if (record === null || record.hash.length !== hash.length || !timingSafeEqual(record.hash, hash)) {
      return failure('API_KEY_INVALID', 'unknown API key');
    }
    if (record.isRevoked) return failure('API_KEY_REVOKED', 'this API key was revoked');
    // a rotated key works until its overlap ends (checked on every request, cached or not)
    if (record.expiresAtMs !== undefined && record.expiresAtMs <= this.options.clock.nowMs()) {
      return failure('API_KEY_REVOKED', 'this API key was rotated and its overlap has ended');
    }
    if (this.options.keyStore.isSuspended?.(record.tenant) === true) return failure('TENANT_SUSPENDED', 'this tenant is suspended');
    let identity: Identity;
    try {
      identity = {
        kind: 'apiKey',
        tenant: parseTenantId(record.tenant),
        keyId: parseKeyId(record.keyId),
        planId: parsePlanId(record.planId),
        keyFingerprint: keyFingerprint(hash),
        clientIp,
      };
    } catch {
      return failure('INVALID_ID', 'the key store returned an invalid id for this key');
    }
    return { isOk: true, identity };
  }

  private identifyAnonymous(clientIp: string | undefined): IdentifyResult {
    if (this.anonymous === null) return failure('API_KEY_REQUIRED', 'an API key is required: Authorization: Bearer tg_<key>');
    if (clientIp === undefined) return failure('API_KEY_REQUIRED', 'an API key is required (the client address is unknown)');
    try {
      parseIpHex(clientIp);
    } catch {
      return failure('INVALID_ID', 'the client address is not an IP address');
    }
    return { isOk: true, identity: { kind: 'anonymous', ...this.anonymous, keyFingerprint: null, clientIp } };
  }

  /** Remembers a key hash the store knows (at most 100 000, the least recently found dropped first). */
  private rememberKnown(cacheKey: string): void {
    this.knownHashes.delete(cacheKey);
    this.knownHashes.add(cacheKey);
    if (this.knownHashes.size > MAX_KNOWN_HASHES) {
      const oldest = this.knownHashes.values().next();
      if (oldest.done !== true) this.knownHashes.delete(oldest.value);
    }
  }

  /**
   * The key's record (null: unknown), from the cache or the store; when it is
   * not cached and `address` has used up its unknown keys, when to try again.
   */
  private async lookup(hash: Buffer, address: string): Promise<ApiKeyRecord | null | { retryAfterMs: number }> {
    const version = this.options.keyStore.version();
    if (version !== this.cacheVersion) {
      this.cache.clear();
      this.cacheVersion = version;
    }
    const cacheKey = hash.toString('base64');
    const nowMs = this.options.clock.nowMs();
    const cached = this.cache.get(cacheKey);
    if (cached !== undefined && cached.expiresAtMs > nowMs) return cached.record;
    if (!this.knownHashes.has(cacheKey)) {
      const allowance = this.unknownKeys.check(address);
      if (!allowance.isAllowed) return { retryAfterMs: allowance.retryAfterMs };
    }
    const record = (await this.options.keyStore.findByHash(hash)) ?? null;
    if (record === null) this.unknownKeys.take(address);
    else this.rememberKnown(cacheKey);
    // A version change during the lookup means the answer may be stale: do not cache it.
    if (this.options.keyStore.version() === version) {
      this.cache.delete(cacheKey);
      this.cache.set(cacheKey, { record, expiresAtMs: nowMs + this.ttlMs });
      if (this.cache.size > this.maxEntries) {
        const oldest = this.cache.keys().next();
        if (oldest.done !== true) this.cache.delete(oldest.value);
      }
    }
    return record;
  }
}
