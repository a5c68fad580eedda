import { describe, expect, it } from 'vitest';
import { generateAdminToken, hashAdminToken, isWellFormedAdminToken } from '../../../src/admin/index.js';
import { generateApiKey } from '../../../src/graphql/index.js';

describe('admin tokens', () => {
  it('are tga_ and 43 base64url characters, fresh each time, hashed to 32 bytes', () => {
    const tokens = new Set(Array.from({ length: 50 }, generateAdminToken));
    expect(tokens.size).toBe(50);
    for (const token of tokens) {
      expect(isWellFormedAdminToken(token)).toBe(true);
      expect(hashAdminToken(token)).toHaveLength(32);
    }
  });

  it('never take a tenant API key, a truncated or padded token for one', () => {
    const token = generateAdminToken();
    expect(isWellFormedAdminToken(generateApiKey())).toBe(false);
    expect(isWellFormedAdminToken(token.slice(0, -1))).toBe(false);
    expect(isWellFormedAdminToken(`${token}A`)).toBe(false);
    expect(isWellFormedAdminToken(` ${token}`)).toBe(false);
  });
});
