/**
 * The GraphQL edge on a real socket (node:http): anonymous traffic metered
 * per client address taken from the socket, RateLimit / Retry-After headers
 * on the wire, and header bytes no client may send (NUL, CR) refused before
 * anything reaches the decider.
 */
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisDecider, connectDeciderRedis, type DeciderRedis } from '../../src/decider/index.js';
import { forwardedClientIp } from '../../src/graphql/index.js';
import { parseLimitId, parseTrustedProxies, systemClock } from '../../src/shared/index.js';
import { closeAll } from '../support/teardown.js';
import { CountingDecider, bodyOf, codeOf, plan, slowBucket, testApp, type TestApp } from '../support/graphql.js';
import { testStack, uniqueTenant } from '../support/stack.js';

let redis: DeciderRedis;
let decider: CountingDecider;
let api: TestApp;
let server: Server;
let baseUrl: string;
const anonymousTenant = uniqueTenant('anon');

beforeAll(async () => {
  redis = await connectDeciderRedis({ url: testStack().redisUrl, commandTimeoutMs: 5_000 });
  decider = new CountingDecider(new RedisDecider(redis, { shardCount: 16, clock: systemClock }));
  api = testApp({
    decider,
    plans: [plan('ip', [slowBucket(14, { id: parseLimitId('ip-burst'), scope: 'ip' })]), plan('keyed', [slowBucket(1_000)])],
    anonymous: { kind: 'ip-plan', tenant: anonymousTenant, planId: 'ip' },
  });
  server = createServer(api.yoga.requestListener);
  await new Promise<void>((resolveListen) => server.listen(0, '127.0.0.1', resolveListen));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  baseUrl = `http://127.0.0.1:${address.port}`;
});

afterAll(async () => {
  await new Promise<void>((resolveClose) => server.close(() => resolveClose()));
  await closeAll(redis);
});

const COST_7 = JSON.stringify({ query: '{ products(first: 6) { nodes { id } } }' });

describe('over a real socket', () => {
  it('meters anonymous callers by their socket address and sends the headers on the wire', async () => {
    const post = () => fetch(`${baseUrl}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: COST_7 });
    const [first, second, third] = [await post(), await post(), await post()];
    expect([first.status, second.status, third.status]).toEqual([200, 200, 429]);
    expect(second.headers.get('ratelimit')).toMatch(/^"ip-burst";r=0;t=\d+$/);
    expect(third.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(codeOf(await bodyOf(third))).toBe('RATE_LIMITED');
    const input = decider.decides.at(-1);
    expect(input?.tenant).toBe(anonymousTenant);
    expect(input?.clientIp).toMatch(/^(::ffff:)?127\.0\.0\.1$/);
  });

  it('serves a keyed request, /health and /metrics on the same socket', async () => {
    const key = api.keyFor(uniqueTenant('s'), 'keyed');
    const response = await fetch(`${baseUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: COST_7,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('ratelimit-policy')).toBe('"burst";q=1000;w=3600000');
    expect((await fetch(`${baseUrl}/health`)).status).toBe(200);
    expect((await fetch(`${baseUrl}/metrics`)).status).toBe(200);
  });

  it.each([
    ['a NUL byte', 'Idempotency-Key: a\u0000b'],
    ['a bare CR', 'Idempotency-Key: a\rb'],
  ])('refuses a header with %s before the decider', async (_name, header) => {
    const before = decider.decides.length;
    const port = new URL(baseUrl).port;
    const raw = [
      `POST /graphql HTTP/1.1`,
      `Host: 127.0.0.1:${port}`,
      'Content-Type: application/json',
      header,
      `Content-Length: ${Buffer.byteLength(COST_7)}`,
      'Connection: close',
      '',
      COST_7,
    ].join('\r\n');
    const reply = await new Promise<string>((resolveReply, reject) => {
      const socket = connect(Number(port), '127.0.0.1');
      let data = '';
      socket.on('data', (chunk) => (data += chunk.toString('latin1')));
      socket.on('end', () => resolveReply(data));
      socket.on('error', reject);
      socket.write(raw);
    });
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    expect(decider.decides.length).toBe(before);
  });

  it('ignores X-Forwarded-For from a peer that is no trusted proxy', async () => {
    // given the server above, which trusts no proxy
    const before = decider.decides.length;
    // when a client writes another address in the header
    await fetch(`${baseUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': '203.0.113.99' },
      body: COST_7,
    });
    // then it is still metered by its socket address
    expect(decider.decides.length).toBe(before + 1);
    expect(decider.decides.at(-1)?.clientIp).toMatch(/^(::ffff:)?127\.0\.0\.1$/);
  });

  it('behind a trusted proxy meters each client by the right-most untrusted X-Forwarded-For hop, in buckets of their own', async () => {
    // given a server that trusts the loopback proxy in front of it
    const proxied = testApp({
      decider,
      plans: [plan('ip', [slowBucket(14, { id: parseLimitId('ip-burst'), scope: 'ip' })])],
      anonymous: { kind: 'ip-plan', tenant: anonymousTenant, planId: 'ip' },
      tollgate: { clientIp: forwardedClientIp(parseTrustedProxies('127.0.0.1')) },
    });
    const proxiedServer = createServer(proxied.yoga.requestListener);
    await new Promise<void>((resolveListen) => proxiedServer.listen(0, '127.0.0.1', resolveListen));
    const address = proxiedServer.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    const post = async (forwardedFor: string): Promise<{ status: number; clientIp: string | undefined }> => {
      const response = await fetch(`http://127.0.0.1:${address.port}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': forwardedFor },
        body: COST_7,
      });
      await response.text();
      return { status: response.status, clientIp: decider.decides.at(-1)?.clientIp };
    };
    try {
      // when one client sends three requests (the third with a forged entry in front) and another one
      const first = await post('203.0.113.7');
      const second = await post('203.0.113.7, 127.0.0.1');
      const forged = await post('198.51.100.1, 203.0.113.7');
      const other = await post('203.0.113.8');
      // then the first client's bucket (14 units: two requests of 7) is its own, the forged entry changes nothing,
      // and the other client starts with a full bucket
      expect([first, second, forged, other]).toEqual([
        { status: 200, clientIp: '203.0.113.7' },
        { status: 200, clientIp: '203.0.113.7' },
        { status: 429, clientIp: '203.0.113.7' },
        { status: 200, clientIp: '203.0.113.8' },
      ]);
    } finally {
      await new Promise<void>((resolveClose) => proxiedServer.close(() => resolveClose()));
    }
  });
});
