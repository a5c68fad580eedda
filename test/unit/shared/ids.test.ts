import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError, parseEventId, parseTenantId } from '../../../src/shared/index.js';

describe('parseTenantId', () => {
  it.each(['a', 'acme', 'acme-corp_2', '0', 'a'.repeat(64)])('accepts %s', (raw) => {
    expect(parseTenantId(raw)).toBe(raw);
  });

  it.each(['', 'Acme', '-acme', '_a', 'a:b', 'a{b}', 'a#b', 'a/b', 'a b', 'a\nb', 'a\0b', 'a'.repeat(65), 'é'])(
    'rejects %j with INVALID_ID',
    (raw) => {
      expect(() => parseTenantId(raw)).toThrow(ValidationError);
      try {
        parseTenantId(raw);
      } catch (error) {
        expect((error as ValidationError).code).toBe('INVALID_ID');
      }
    },
  );

  it('rejects non-strings', () => {
    for (const raw of [undefined, null, 42, {}, ['a']]) expect(() => parseTenantId(raw)).toThrow(/invalid tenant id/);
  });

  it('never accepts a string containing a key separator', () => {
    fc.assert(
      fc.property(fc.string(), fc.constantFrom(':', '{', '}', '#', '/', '\r', '\n', '\0'), fc.string(), (a, sep, b) => {
        expect(() => parseTenantId(`${a}${sep}${b}`)).toThrow(ValidationError);
      }),
    );
  });

  it('truncates a hostile id in the error message', () => {
    expect(() => parseTenantId('x'.repeat(65_536))).toThrow(/^invalid tenant id: "x{80}" does not match/);
  });
});

describe('parseEventId', () => {
  it('accepts dots and up to 128 chars, and nothing else', () => {
    expect(parseEventId('req.abc-1_2')).toBe('req.abc-1_2');
    expect(parseEventId('a'.repeat(128))).toHaveLength(128);
    expect(() => parseEventId('a'.repeat(129))).toThrow(ValidationError);
    expect(() => parseEventId('a:b')).toThrow(ValidationError);
  });
});
