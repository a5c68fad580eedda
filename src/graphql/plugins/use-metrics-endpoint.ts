/**
 * Serves a prom-client registry at `endpoint` (never limited: it answers in
 * `onRequest`, before identification and the GraphQL pipeline).
 */
import type { Plugin } from 'graphql-yoga';
import type { Registry } from 'prom-client';

export interface MetricsEndpointOptions {
  registry: Registry;
  /** @default '/metrics' */
  endpoint?: string;
}

export function useMetricsEndpoint(options: MetricsEndpointOptions): Plugin {
  const endpoint = options.endpoint ?? '/metrics';
  return {
    onRequest: async (payload) => {
      if (payload.url.pathname !== endpoint || payload.request.method !== 'GET') return;
      const body = await options.registry.metrics();
      payload.endResponse(new payload.fetchAPI.Response(body, { status: 200, headers: { 'content-type': options.registry.contentType } }));
    },
  };
}
