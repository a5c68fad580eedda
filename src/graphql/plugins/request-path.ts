/**
 * Matching a request's path without a `URL` object. Plugins that answer one path in `onRequest` run for every
 * request: yoga's lazy `url` builds a `URL` on first use, and its readiness plugin then tests a `URLPattern`, about
 * 10 µs of CPU on every GraphQL request of the hot path (bench `gateway`). The path is cut out of `request.url`
 * instead (clients send normalised paths; anything else simply does not match and reaches yoga's own routing).
 */
import { useReadinessCheck, type Plugin } from 'graphql-yoga';

/** The path of an absolute or origin-relative URL, without its query or fragment: `http://h:1/ready?x` → `/ready`. */
export function requestPath(url: string): string {
  const scheme = url.indexOf('://');
  const start = scheme === -1 ? url.indexOf('/') : url.indexOf('/', scheme + 3);
  if (start === -1) return '/';
  let end = url.length;
  const query = url.indexOf('?', start);
  if (query !== -1) end = query;
  const fragment = url.indexOf('#', start);
  if (fragment !== -1 && fragment < end) end = fragment;
  return url.slice(start, end);
}

/** yoga's `useReadinessCheck`, consulted only for requests whose path is its endpoint. */
export function useReadyEndpoint(options: Parameters<typeof useReadinessCheck>[0]): Plugin {
  const endpoint = options.endpoint ?? '/ready';
  const inner: Plugin = useReadinessCheck({ ...options, endpoint });
  const { onYogaInit, onRequest } = inner;
  return {
    ...(onYogaInit === undefined ? {} : { onYogaInit }),
    onRequest(payload) {
      if (onRequest !== undefined && requestPath(payload.request.url) === endpoint) return onRequest(payload);
      return undefined;
    },
  };
}
