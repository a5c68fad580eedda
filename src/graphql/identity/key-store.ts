/**
 * The `KeyStore` port: API key records looked up by the key's sha256, and an
 * in-memory implementation for tests and the demo. A record's ids are parsed
 * when it is stored, so nothing unchecked reaches a Redis key.
 */
import { parseKeyId, parsePlanId, parseTenantId, type KeyId, type PlanId, type TenantId } from '../../shared/index.js';
import { generateApiKey, hashApiKey } from './api-key.js';

export interface ApiKeyRecord {
  keyId: KeyId;
  tenant: TenantId;
  planId: PlanId;
  /** sha256 of the key (32 bytes). */
  hash: Buffer;
  isRevoked: boolean;
  /** When a rotated key stops working, epoch ms (absent: until revoked). */
  expiresAtMs?: number;
}

/** Port: where API key records live (DynamoDB in production, memory here). */
export interface KeyStore {
  /** The record whose key hashes to `hash` (exact 32-byte match), or undefined. */
  findByHash(hash: Buffer): Promise<ApiKeyRecord | undefined>;
  /** Configuration version: changes whenever any key is added, revoked or moved. Caches key off it. */
  version(): number;
  /** Whether an admin suspended the tenant (its keys answer 403 TENANT_SUSPENDED). @default never */
  isSuspended?(tenant: TenantId): boolean;
}

/** Keys in memory, indexed by hash. */
export class InMemoryKeyStore implements KeyStore {
  private readonly byHash = new Map<string, ApiKeyRecord>();
  private readonly byKeyId = new Map<string, ApiKeyRecord>();
  private currentVersion = 1;

  /**
   * Adds a key (a fresh random one unless `key` is given) and returns it: the
   * only time the plain key is available.
   * @throws ValidationError `INVALID_ID` for a bad tenant, key or plan id
   */
  add(input: { tenant: string; keyId: string; planId: string; key?: string }): { key: string; record: ApiKeyRecord } {
    const key = input.key ?? generateApiKey();
    const record: ApiKeyRecord = {
      keyId: parseKeyId(input.keyId),
      tenant: parseTenantId(input.tenant),
      planId: parsePlanId(input.planId),
      hash: hashApiKey(key),
      isRevoked: false,
    };
    this.byHash.set(record.hash.toString('hex'), record);
    this.byKeyId.set(`${record.tenant}/${record.keyId}`, record);
    this.currentVersion += 1;
    return { key, record };
  }

  /** Revokes a key; cached identities of it are dropped by the version change. */
  revoke(tenant: string, keyId: string): boolean {
    const record = this.byKeyId.get(`${tenant}/${keyId}`);
    if (record === undefined) return false;
    const revoked = { ...record, isRevoked: true };
    this.byHash.set(record.hash.toString('hex'), revoked);
    this.byKeyId.set(`${tenant}/${keyId}`, revoked);
    this.currentVersion += 1;
    return true;
  }

  findByHash(hash: Buffer): Promise<ApiKeyRecord | undefined> {
    return Promise.resolve(this.byHash.get(hash.toString('hex')));
  }

  version(): number {
    return this.currentVersion;
  }
}
