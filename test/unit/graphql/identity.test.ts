import { describe, expect, it } from 'vitest';
import {
  ApiKeyIdentifier,
  InMemoryKeyStore,
  generateApiKey,
  hashApiKey,
  isWellFormedApiKey,
  type ApiKeyRecord,
  type KeyStore,
} from '../../../src/graphql/index.js';
import { parseKeyId, parsePlanId, parseTenantId, type Clock } from '../../../src/shared/index.js';

const clock = (): Clock & { advance(ms: number): void } => {
  let now = 1_000_000;
  return { nowMs: () => now, advance: (ms) => (now += ms) };
};

/** A store that counts lookups (a port fake, not a mock of a library). */
class CountingStore implements KeyStore {
  lookups = 0;
  constructor(readonly inner: InMemoryKeyStore) {}
  findByHash(hash: Buffer): Promise<ApiKeyRecord | undefined> {
    this.lookups += 1;
    return this.inner.findByHash(hash);
  }
  version(): number {
    return this.inner.version();
  }
}

describe('API keys', () => {
  it('are tg_ and 43 base64url characters, hashed with sha256', () => {
    const key = generateApiKey();
    expect(key).toMatch(/^tg_[A-Za-z0-9_-]{43}$/);
    expect(isWellFormedApiKey(key)).toBe(true);
    expect(hashApiKey(key)).toHaveLength(32);
    expect(hashApiKey(key).equals(hashApiKey(key))).toBe(true);
    for (const junk of ['tg_short', 'xx_' + 'a'.repeat(43), `tg_${'a'.repeat(40)}{}`, `tg_${'a'.repeat(200)}`])
      expect(isWellFormedApiKey(junk)).toBe(false);
  });
});

describe('ApiKeyIdentifier', () => {
  const setup = (anonymous?: ConstructorParameters<typeof ApiKeyIdentifier>[0]['anonymous']) => {
    const inner = new InMemoryKeyStore();
    const store = new CountingStore(inner);
    const time = clock();
    const { key } = inner.add({ tenant: 'acme', keyId: 'k1', planId: 'starter' });
    const identifier = new ApiKeyIdentifier({
      keyStore: store,
      clock: time,
      cacheTtlMs: 1_000,
      ...(anonymous === undefined ? {} : { anonymous }),
    });
    return { inner, store, time, key, identifier };
  };

  it('identifies a good key as its tenant, key and plan, never exposing the key', async () => {
    const { identifier, key } = setup();
    const result = await identifier.identify(`Bearer ${key}`, '127.0.0.1');
    expect(result).toMatchObject({ isOk: true, identity: { kind: 'apiKey', tenant: 'acme', keyId: 'k1', planId: 'starter' } });
    expect(JSON.stringify(result)).not.toContain(key);
    expect(JSON.stringify(result)).not.toContain(key.slice(3, 20));
  });

  it.each([
    [null, 'API_KEY_REQUIRED'],
    ['', 'API_KEY_REQUIRED'],
    ['Basic dXNlcjpwYXNz', 'API_KEY_INVALID'],
    ['Bearer not-a-key', 'API_KEY_INVALID'],
    [`Bearer tg_${'A'.repeat(43)}`, 'API_KEY_INVALID'],
  ])('answers %s with %s (401)', async (header, code) => {
    const { identifier } = setup();
    expect(await identifier.identify(header, '127.0.0.1')).toMatchObject({ isOk: false, code, status: 401 });
  });

  it('refuses a revoked key at once, although the good answer was cached', async () => {
    const { identifier, inner, key } = setup();
    expect((await identifier.identify(`Bearer ${key}`, undefined)).isOk).toBe(true);
    inner.revoke('acme', 'k1');
    expect(await identifier.identify(`Bearer ${key}`, undefined)).toMatchObject({ isOk: false, code: 'API_KEY_REVOKED', status: 401 });
  });

  it('caches lookups (known and unknown keys) until the TTL or a version change', async () => {
    const { identifier, store, time, key, inner } = setup();
    const unknown = `Bearer ${generateApiKey()}`;
    await identifier.identify(`Bearer ${key}`, undefined);
    await identifier.identify(`Bearer ${key}`, undefined);
    await identifier.identify(unknown, undefined);
    await identifier.identify(unknown, undefined);
    expect(store.lookups).toBe(2);
    time.advance(1_001);
    await identifier.identify(`Bearer ${key}`, undefined);
    expect(store.lookups).toBe(3);
    inner.add({ tenant: 'other', keyId: 'k2', planId: 'starter' });
    await identifier.identify(`Bearer ${key}`, undefined);
    expect(store.lookups).toBe(4);
  });

  it('refuses fresh unknown keys from an address past its allowance without a store read, and nothing else', async () => {
    // given an identifier allowing 2 unknown keys per second per address (burst 4)
    const inner = new InMemoryKeyStore();
    const store = new CountingStore(inner);
    const time = clock();
    const { key } = inner.add({ tenant: 'acme', keyId: 'k1', planId: 'starter' });
    const identifier = new ApiKeyIdentifier({ keyStore: store, clock: time, unknownKeysPerSecond: 2 });
    const known = `Bearer ${key}`;
    const cachedJunk = `Bearer ${generateApiKey()}`;
    expect((await identifier.identify(known, '10.0.0.1')).isOk).toBe(true);
    expect(await identifier.identify(cachedJunk, '10.0.0.1')).toMatchObject({ code: 'API_KEY_INVALID' });
    // when the address presents fresh random keys
    const answers = [];
    for (let index = 0; index < 6; index += 1) answers.push(await identifier.identify(`Bearer ${generateApiKey()}`, '10.0.0.1'));
    // then 3 more are looked up (the burst of 4, one spent above), the rest refused with a retry time, unread
    expect(answers.map((answer) => (answer.isOk ? 'ok' : answer.code))).toEqual([
      'API_KEY_INVALID',
      'API_KEY_INVALID',
      'API_KEY_INVALID',
      'TOO_MANY_UNKNOWN_KEYS',
      'TOO_MANY_UNKNOWN_KEYS',
      'TOO_MANY_UNKNOWN_KEYS',
    ]);
    expect(answers[3]).toMatchObject({ status: 429, retryAfterMs: 500 });
    expect(store.lookups).toBe(5);
    // and cached keys from that address, valid or not, are answered as before; another address is not affected
    expect((await identifier.identify(known, '10.0.0.1')).isOk).toBe(true);
    expect(await identifier.identify(cachedJunk, '10.0.0.1')).toMatchObject({ code: 'API_KEY_INVALID' });
    expect(await identifier.identify(`Bearer ${generateApiKey()}`, '10.0.0.2')).toMatchObject({ code: 'API_KEY_INVALID' });
    // and after a config change (the lookup cache is dropped) a key found valid before is looked up at once,
    // while a key never seen from the limited address waits for the allowance, then works
    const lookupsBeforeChange = store.lookups;
    const fresh = inner.add({ tenant: 'acme', keyId: 'k2', planId: 'starter' });
    expect((await identifier.identify(known, '10.0.0.1')).isOk).toBe(true);
    expect(store.lookups).toBe(lookupsBeforeChange + 1);
    expect(await identifier.identify(`Bearer ${fresh.key}`, '10.0.0.1')).toMatchObject({ code: 'TOO_MANY_UNKNOWN_KEYS' });
    time.advance(500);
    expect(await identifier.identify(`Bearer ${fresh.key}`, '10.0.0.1')).toMatchObject({ isOk: true, identity: { keyId: 'k2' } });
  });

  it('meters anonymous callers per address when configured, and refuses bad addresses', async () => {
    const { identifier } = setup({ kind: 'ip-plan', tenant: 'anonymous', planId: 'anon' });
    expect(await identifier.identify(null, '10.1.2.3')).toMatchObject({
      isOk: true,
      identity: { kind: 'anonymous', tenant: 'anonymous', keyId: 'anonymous', clientIp: '10.1.2.3' },
    });
    expect(await identifier.identify(null, undefined)).toMatchObject({ isOk: false, code: 'API_KEY_REQUIRED' });
    expect(await identifier.identify(null, 'not-an-ip}:{')).toMatchObject({ isOk: false, code: 'INVALID_ID', status: 400 });
  });

  it('refuses a record with a hostile id from a foreign store with INVALID_ID', async () => {
    const key = generateApiKey();
    const hostile: KeyStore = {
      findByHash: (hash) =>
        Promise.resolve({
          keyId: 'k}:{1' as ReturnType<typeof parseKeyId>,
          tenant: parseTenantId('acme'),
          planId: parsePlanId('p'),
          hash,
          isRevoked: false,
        }),
      version: () => 1,
    };
    const identifier = new ApiKeyIdentifier({ keyStore: hostile, clock: clock() });
    expect(await identifier.identify(`Bearer ${key}`, undefined)).toMatchObject({ isOk: false, code: 'INVALID_ID', status: 400 });
  });

  it('refuses a record whose hash does not match (constant-time re-check)', async () => {
    const other = hashApiKey(generateApiKey());
    const lying: KeyStore = {
      findByHash: () =>
        Promise.resolve({ keyId: parseKeyId('k'), tenant: parseTenantId('acme'), planId: parsePlanId('p'), hash: other, isRevoked: false }),
      version: () => 1,
    };
    const identifier = new ApiKeyIdentifier({ keyStore: lying, clock: clock() });
    expect(await identifier.identify(`Bearer ${generateApiKey()}`, undefined)).toMatchObject({ isOk: false, code: 'API_KEY_INVALID' });
  });

  it('stores only parsed ids', () => {
    const store = new InMemoryKeyStore();
    expect(() => store.add({ tenant: 'a{b}', keyId: 'k', planId: 'p' })).toThrow(expect.objectContaining({ code: 'INVALID_ID' }));
    expect(() => store.add({ tenant: 'a', keyId: 'k:1', planId: 'p' })).toThrow(expect.objectContaining({ code: 'INVALID_ID' }));
  });
});
