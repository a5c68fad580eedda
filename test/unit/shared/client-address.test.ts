import { describe, expect, it } from 'vitest';
import { clientAddress, normalizeAddress, parseTrustedProxies } from '../../../src/shared/index.js';

describe('parseTrustedProxies', () => {
  it('takes addresses and CIDR ranges of both families, and nothing from an empty list', () => {
    const trusted = parseTrustedProxies(' 10.0.0.0/8, 127.0.0.1 ,fd00::/8,[::1]');
    expect(trusted.entries).toEqual(['10.0.0.0/8', '127.0.0.1/32', 'fd00::/8', '::1/128']);
    expect(['10.200.3.4', '127.0.0.1', 'fd12::9', '::1'].map(trusted.has)).toEqual([true, true, true, true]);
    expect(['11.0.0.1', '127.0.0.2', 'fe80::1', 'not-an-ip'].map(trusted.has)).toEqual([false, false, false, false]);
    expect(parseTrustedProxies('').has('127.0.0.1')).toBe(false);
  });

  it.each(['10.0.0.0/33', '10.0.0.0/8/1', 'example.com', '10.0.0.0/x', '::/129', '1.2.3'])('refuses %s with a clear error', (entry) => {
    expect(() => parseTrustedProxies(`127.0.0.1,${entry}`)).toThrow(
      expect.objectContaining({ code: 'INVALID_INPUT', message: expect.stringContaining(entry) as string }),
    );
  });
});

describe('clientAddress', () => {
  const trusted = parseTrustedProxies('10.0.0.0/8,127.0.0.1');
  const resolve = (peer: string | undefined, forwardedFor: string | null) => clientAddress({ peer, forwardedFor, trusted });

  it('is the socket peer when the peer is no trusted proxy, whatever X-Forwarded-For says', () => {
    expect(resolve('198.51.100.4', '203.0.113.7')).toBe('198.51.100.4');
    expect(resolve('::ffff:198.51.100.4', null)).toBe('198.51.100.4');
    expect(resolve(undefined, '203.0.113.7')).toBeUndefined();
  });

  it('behind trusted proxies is the right-most untrusted hop, so a client cannot choose its address', () => {
    expect(resolve('127.0.0.1', '203.0.113.7')).toBe('203.0.113.7');
    expect(resolve('::ffff:127.0.0.1', '203.0.113.7, 10.1.2.3')).toBe('203.0.113.7');
    // the client wrote a forged entry in front: the proxy's own entry comes after it
    expect(resolve('127.0.0.1', '6.6.6.6, 203.0.113.7, 10.1.2.3')).toBe('203.0.113.7');
    expect(resolve('10.0.0.9', '2001:db8::1')).toBe('2001:db8::1');
    expect(resolve('10.0.0.9', '[2001:db8::2]')).toBe('2001:db8::2');
  });

  it('stops at the last trusted hop on an entry that is no address, and gives the left-most of an all-trusted chain', () => {
    expect(resolve('127.0.0.1', 'garbage, 10.1.2.3')).toBe('10.1.2.3');
    expect(resolve('127.0.0.1', '203.0.113.7, ')).toBe('127.0.0.1');
    expect(resolve('127.0.0.1', '10.9.9.9, 10.1.2.3')).toBe('10.9.9.9');
    expect(resolve('127.0.0.1', null)).toBe('127.0.0.1');
  });
});

describe('normalizeAddress', () => {
  it('unwraps brackets and IPv4-mapped IPv6, and refuses what is no address', () => {
    expect(normalizeAddress('[::1]')).toBe('::1');
    expect(normalizeAddress(' ::FFFF:10.0.0.1 ')).toBe('10.0.0.1');
    expect(normalizeAddress('2001:DB8::1')).toBe('2001:db8::1');
    expect(normalizeAddress('10.0.0.1:443')).toBeUndefined();
  });
});
