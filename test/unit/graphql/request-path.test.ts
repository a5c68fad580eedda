import { createSchema, createYoga } from 'graphql-yoga';
import { describe, expect, it } from 'vitest';
import { requestPath, useReadyEndpoint } from '../../../src/graphql/index.js';

describe('requestPath', () => {
  it('cuts the path out of a URL without its query or fragment', () => {
    expect(requestPath('http://127.0.0.1:4000/ready')).toBe('/ready');
    expect(requestPath('https://api.example.com/jobs/j-1?x=1#top')).toBe('/jobs/j-1');
    expect(requestPath('http://host:1/ready#a?b')).toBe('/ready');
    expect(requestPath('http://host')).toBe('/');
    expect(requestPath('/graphql?query=1')).toBe('/graphql');
  });
});

describe('useReadyEndpoint', () => {
  it('answers its endpoint (with a query too) from the check, and leaves every other path to the server', async () => {
    // given a server whose readiness check counts its calls
    let checks = 0;
    const yoga = createYoga({
      schema: createSchema({ typeDefs: 'type Query { ok: Boolean }', resolvers: { Query: { ok: () => true } } }),
      plugins: [
        useReadyEndpoint({
          endpoint: '/ready',
          check: ({ fetchAPI }) => {
            checks += 1;
            return new fetchAPI.Response('{"isReady":false}', { status: 503 });
          },
        }),
      ],
      logging: false,
    });
    // when the endpoint, look-alike paths and a GraphQL request are sent
    const ready = await yoga.fetch('http://localhost/ready');
    const withQuery = await yoga.fetch('http://localhost/ready?probe=1');
    const lookAlikes = await Promise.all(
      ['/graphql/ready', '/readyz', '/not-ready'].map(async (path) => yoga.fetch(`http://localhost${path}`)),
    );
    const graphql = await yoga.fetch('http://localhost/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ ok }' }),
    });
    // then only the endpoint ran the check
    expect([ready.status, withQuery.status]).toEqual([503, 503]);
    expect(await ready.text()).toBe('{"isReady":false}');
    expect(lookAlikes.map((response) => response.status)).toEqual([404, 404, 404]);
    expect(await graphql.json()).toEqual({ data: { ok: true } });
    expect(checks).toBe(2);
  });
});
