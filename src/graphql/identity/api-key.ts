/**
 * API keys: `tg_` followed by 43 base64url characters (32 random bytes). Only
 * their sha256 is stored and looked up; the key itself is shown once, at
 * creation, and never logged.
 */
import * as crypto from 'node:crypto';

/** Node's one-shot `crypto.hash` (20.12+): about a quarter cheaper than a `Hash` object for one key. */
const oneShotHash = (crypto as { hash?: (algorithm: string, data: string, encoding: 'buffer') => Buffer }).hash;

export const API_KEY_PREFIX = 'tg_';

/** The shape every key this module makes has (longer keys from elsewhere are accepted up to 128). */
const API_KEY_PATTERN = /^tg_[A-Za-z0-9_-]{32,128}$/;

/** A fresh random key (shown once; store only its hash). */
export function generateApiKey(): string {
  return `${API_KEY_PREFIX}${crypto.randomBytes(32).toString('base64url')}`;
}

/** Whether `raw` looks like a key (checked before hashing, so junk is refused cheaply). */
export function isWellFormedApiKey(raw: string): boolean {
  return API_KEY_PATTERN.test(raw);
}

/** sha256 of the key's UTF-8 bytes (32 bytes). */
export function hashApiKey(key: string): Buffer {
  return oneShotHash === undefined ? crypto.createHash('sha256').update(key, 'utf8').digest() : oneShotHash('sha256', key, 'buffer');
}

/** A short, non-reversible label of a key for logs: the first 12 hex digits of its hash. */
export function keyFingerprint(hash: Buffer): string {
  return hash.subarray(0, 6).toString('hex');
}
