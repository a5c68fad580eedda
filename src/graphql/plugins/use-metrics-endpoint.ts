/**
 * Serves a prom-client registry at `endpoint` (never limited: it answers in
 * `onRequest`, before identification and the GraphQL pipeline).
 */
import type { Plugin } from 'graphql-yoga';
import type { Registry } from 'prom-client';
import { requestPath } from './request-path.js';

export interface MetricsEndpointOptions {
  registry: Registry;
  /** @default '/metrics' */
  endpoint?: string;
}

export function useMetricsEndpoint(options: MetricsEndpointOptions): Plugin {
  const endpoint = options.endpoint ?? '/metrics';
  return {
    // synchronous for every other request (no URL object, no promise)
    onRequest: (payload) => {
      if (payload.request.method !== 'GET' || requestPath(payload.request.url) !== endpoint) return undefined;
      return options.registry.metrics().then((body) => {
        payload.endResponse(
          new payload.fetchAPI.Response(body, { status: 200, headers: { 'content-type': options.registry.contentType } }),
        );
      });
    },
  };
}
