import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CliError, adminTarget, table } from '../../../src/cli/admin-client.js';

describe('adminTarget', () => {
  it('takes flags over the environment over the first-start token file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'admin-target-'));
    const file = join(dir, 'admin-token.json');
    writeFileSync(file, JSON.stringify({ tokenId: 'first-start-1', token: 'tga_from_file' }));
    const env = { TOLLGATE_ADMIN_TOKEN_FILE: file };
    expect(adminTarget({}, env)).toEqual({ url: 'http://127.0.0.1:4000', token: 'tga_from_file' });
    expect(adminTarget({}, { ...env, TOLLGATE_ADMIN_TOKEN: 'tga_env', TOLLGATE_ADMIN_URL: 'http://h:1/' })).toEqual({
      url: 'http://h:1',
      token: 'tga_env',
    });
    expect(adminTarget({ token: 'tga_flag', url: 'https://x' }, { ...env, TOLLGATE_ADMIN_TOKEN: 'tga_env' })).toEqual({
      url: 'https://x',
      token: 'tga_flag',
    });
  });

  it('refuses a missing token and a URL that is not http(s) with exit code 2', () => {
    const none = { TOLLGATE_ADMIN_TOKEN_FILE: '/nonexistent/admin-token.json' };
    expect(() => adminTarget({}, none)).toThrow(CliError);
    expect(() => adminTarget({}, none)).toThrow('no admin token');
    expect(() => adminTarget({ url: 'ftp://x', token: 't' }, {})).toThrow('must start with http:// or https://');
  });
});

describe('table', () => {
  it('aligns columns under upper-case headers and prints null as -', () => {
    expect(
      table(
        [
          { id: 'acme', plan: null },
          { id: 'b', plan: 'pro' },
        ],
        ['id', 'plan'],
      ),
    ).toBe('ID    PLAN\nacme  -\nb     pro');
    expect(table([], ['id'])).toBe('(none)');
  });
});
