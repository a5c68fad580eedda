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
import { parseLimitId, systemClock } from '../../src/shared/index.js';
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
  redis.disconnect();
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
    const response = await fetch(`${baseUrl}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: COST_7 });
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
    const raw = [`POST /graphql HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Content-Type: application/json', header, `Content-Length: ${Buffer.byteLength(COST_7)}`, 'Connection: close', '', COST_7].join('\r\n');
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
});
