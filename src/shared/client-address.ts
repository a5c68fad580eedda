/**
 * Client addresses behind trusted reverse proxies (`API_TRUSTED_PROXIES`).
 *
 * Without trusted proxies the address is the socket's peer, and
 * `X-Forwarded-For` is ignored (any client can write it). With them, a request
 * whose peer is a trusted proxy is attributed by walking `X-Forwarded-For`
 * from the right (each proxy appends the address it received the request
 * from) past trusted addresses: the first untrusted one is the client. A hop
 * that is not an address stops the walk at the last trusted one, and a chain
 * of trusted addresses only gives its left-most. So a client can never choose
 * its own address by sending the header, however many entries it writes.
 *
 * Here (not in src/graphql) so configuration can check the list when it loads.
 */
import { BlockList, isIP } from 'node:net';
import { ValidationError } from './errors.js';

/** The trusted proxies: addresses and CIDR ranges, IPv4 and IPv6. */
export interface TrustedProxies {
  /** Whether a (normalized) address is one of them. */
  has: (address: string) => boolean;
  /** The entries as configured, normalized (for logs). */
  entries: readonly string[];
}

/** An address as written, without IPv6 brackets and with an IPv4-mapped IPv6 address as IPv4; undefined when it is none. */
export function normalizeAddress(raw: string): string | undefined {
  let address = raw.trim();
  if (address.startsWith('[') && address.endsWith(']')) address = address.slice(1, -1);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped !== undefined) address = mapped;
  return isIP(address) === 0 ? undefined : address.toLowerCase();
}

/**
 * Parses a comma-separated list of addresses and CIDR ranges (`10.0.0.0/8, 127.0.0.1, fd00::/8`).
 * @throws ValidationError `INVALID_INPUT` naming the first entry that is neither
 */
export function parseTrustedProxies(raw: string): TrustedProxies {
  const list = new BlockList();
  const entries: string[] = [];
  for (const entry of raw
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')) {
    const [rawAddress = '', prefix, extra] = entry.split('/');
    const address = normalizeAddress(rawAddress);
    const family = address === undefined ? 0 : isIP(address);
    const bits = family === 4 ? 32 : 128;
    const length = prefix === undefined ? bits : /^\d{1,3}$/.test(prefix) ? Number(prefix) : Number.NaN;
    if (address === undefined || extra !== undefined || !(length >= 0 && length <= bits)) {
      throw new ValidationError('INVALID_INPUT', `not an IP address or CIDR range: ${JSON.stringify(entry.slice(0, 80))}`);
    }
    const type = family === 4 ? 'ipv4' : 'ipv6';
    list.addSubnet(address, length, type);
    entries.push(`${address}/${length}`);
  }
  return {
    entries,
    has: (address) => {
      const family = isIP(address);
      return family !== 0 && entries.length > 0 && list.check(address, family === 4 ? 'ipv4' : 'ipv6');
    },
  };
}

/**
 * The client address of a request that reached us from `peer` with these `X-Forwarded-For` values (see the file
 * header); undefined when the peer is unknown.
 */
export function clientAddress(input: {
  peer: string | undefined;
  forwardedFor: string | null;
  trusted: TrustedProxies;
}): string | undefined {
  const peer = input.peer === undefined ? undefined : (normalizeAddress(input.peer) ?? input.peer);
  if (peer === undefined || !input.trusted.has(peer) || input.forwardedFor === null) return peer;
  const hops = input.forwardedFor.split(',');
  let client = peer;
  for (let index = hops.length - 1; index >= 0; index -= 1) {
    const hop = normalizeAddress(hops[index] ?? '');
    if (hop === undefined) return client;
    client = hop;
    if (!input.trusted.has(hop)) return hop;
  }
  return client;
}
