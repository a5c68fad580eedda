/**
 * The `clientIp` option of the plugins: the socket's peer, or the client behind
 * trusted proxies (src/shared/client-address.ts). The address feeds the
 * anonymous per-IP plans and the unknown-key allowance.
 */
import { clientAddress, type TrustedProxies } from '../../shared/index.js';

/** The socket's peer address of a node:http request (the default client address); undefined elsewhere. */
export function socketClientIp(_request: Request, serverContext: Record<string, unknown>): string | undefined {
  const req = serverContext['req'];
  if (typeof req !== 'object' || req === null) return undefined;
  const socket = (req as { socket?: { remoteAddress?: unknown } }).socket;
  return typeof socket?.remoteAddress === 'string' ? socket.remoteAddress : undefined;
}

/** The plugins' `clientIp` option behind these trusted proxies (the socket's peer when there are none). */
export function forwardedClientIp(
  trusted: TrustedProxies,
): (request: Request, serverContext: Record<string, unknown>) => string | undefined {
  if (trusted.entries.length === 0) return socketClientIp;
  return (request, serverContext) =>
    clientAddress({ peer: socketClientIp(request, serverContext), forwardedFor: request.headers.get('x-forwarded-for'), trusted });
}
