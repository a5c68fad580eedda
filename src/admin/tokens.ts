/**
 * Admin tokens: `tga_` followed by 43 base64url characters (32 random bytes). Only their sha256 is
 * stored; the token is shown once, when it is made (by the admin API, the CLI through it, or at first
 * start into a 0600 file), and never logged. A tenant API key (`tg_…`) is never an admin token.
 */
import { createHash, randomBytes } from 'node:crypto';

export const ADMIN_TOKEN_PREFIX = 'tga_';

const ADMIN_TOKEN_PATTERN = /^tga_[A-Za-z0-9_-]{43}$/;

/** A fresh random admin token (shown once; store only its hash). */
export function generateAdminToken(): string {
  return `${ADMIN_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
}

/** Whether `raw` has the shape of an admin token (checked before hashing). */
export function isWellFormedAdminToken(raw: string): boolean {
  return ADMIN_TOKEN_PATTERN.test(raw);
}

/** sha256 of the token's UTF-8 bytes (32 bytes). */
export function hashAdminToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}
