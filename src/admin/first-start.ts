/**
 * The first admin token, written at start (`npm start`) into a file only this user can read (mode 0600),
 * next to the demo keys: the token is in no log line. A file whose token is still valid is kept as is
 * (restarts make no new token); otherwise a new token is made and the file rewritten.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import type { Logger } from '../shared/index.js';
import type { AdminStore } from './ports.js';
import { generateAdminToken, hashAdminToken } from './tokens.js';

/** What the file holds. */
export interface AdminTokenFile {
  tokenId: string;
  token: string;
}

function readTokenFile(file: string): AdminTokenFile | undefined {
  if (!existsSync(file)) return undefined;
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<AdminTokenFile>;
    return typeof parsed.tokenId === 'string' && typeof parsed.token === 'string'
      ? { tokenId: parsed.tokenId, token: parsed.token }
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Keeps the file's token when it still works, else makes one (`first-start-<hex>`) and writes the file.
 * Returns the token id in the file.
 * @throws DependencyError when DynamoDB fails; the file system's error when the file cannot be written
 */
export async function writeFirstAdminToken(input: { store: AdminStore; file: string; logger: Logger; nowMs: number }): Promise<string> {
  const existing = readTokenFile(input.file);
  if (existing !== undefined) {
    const record = await input.store.findToken(hashAdminToken(existing.token));
    if (record !== undefined && !record.isRevoked) {
      input.logger.info({ file: input.file, tokenId: record.tokenId }, 'admin token file kept (its token is valid)');
      return record.tokenId;
    }
  }
  const token = generateAdminToken();
  const tokenId = `first-start-${randomBytes(4).toString('hex')}`;
  await input.store.createToken({ tokenId, hash: hashAdminToken(token), nowMs: input.nowMs, audit: null });
  mkdirSync(dirname(input.file), { recursive: true });
  writeFileSync(input.file, `${JSON.stringify({ tokenId, token }, null, 2)}\n`, { mode: 0o600 });
  chmodSync(input.file, 0o600);
  input.logger.info({ file: input.file, tokenId }, 'admin token written (shown once, in this file)');
  return tokenId;
}
