/**
 * The API process as `npm start` runs it (`src/graphql/server.ts`, against the
 * test stack, its Redis behind a proxy the test can hold), on real sockets:
 * - request bodies are capped before parsing: 413 `REQUEST_TOO_LARGE` for a
 *   declared or a chunked body past the cap, without reading (or keeping) it;
 * - admission control: beyond its in-flight bound the process sheds requests
 *   by their plan's criticality (anonymous: sheddable, acme on starter:
 *   default, globex on pro: critical) with 503 `OVERLOADED` and Retry-After,
 *   before pricing and the decider.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServer, type ApiServer } from '../support/api-server.js';
import { startHoldingProxy, type HoldingProxy } from '../support/holding-proxy.js';
import { waitFor } from '../support/poll.js';
import { testStack } from '../support/stack.js';

const scratch = mkdtempSync(join(tmpdir(), 'tollgate-edge-bounds-'));
const MAX_BODY_BYTES = 65_536;
const MIB = 1_048_576;
/** The in-flight bounds the process runs with: API_MAX_IN_FLIGHT=8, default at 75 %, sheddable at 50 %. */
const BOUNDS = { critical: 8, default: 6, sheddable: 4 } as const;

type Criticality = keyof typeof BOUNDS;

let api: ApiServer | undefined;
let proxy: HoldingProxy | undefined;
let base = '';
let port = 0;
let keys: Record<Criticality, string | null> = { critical: null, default: null, sheddable: null };

beforeAll(async () => {
  // the test stack's Redis behind a proxy that can hold the process's commands
  const redis = new URL(testStack().redisUrl);
  proxy = await startHoldingProxy({ host: redis.hostname, port: Number(redis.port) });
  const viaProxy = new URL(redis);
  viaProxy.hostname = '127.0.0.1';
  viaProxy.port = String(proxy.port);
  api = await startApiServer({
    scratch,
    env: {
      REDIS_URL: viaProxy.toString(),
      API_DEMO_SEED: 'true',
      API_ANONYMOUS: 'ip-plan',
      API_MAX_IN_FLIGHT: String(BOUNDS.critical),
      API_IN_FLIGHT_DEFAULT_PERCENT: '75',
      API_IN_FLIGHT_SHEDDABLE_PERCENT: '50',
      // held commands wait for the proxy, never time out into a degraded decision
      DECIDER_TIMEOUT_MS: '10000',
      ACCOUNT_ENABLED: 'false',
    },
  });
  const demoKeys = JSON.parse(readFileSync(join(scratch, 'keys.json'), 'utf8')) as { tenant: string; key: string }[];
  const keyOf = (tenant: string): string => demoKeys.find((entry) => entry.tenant === tenant)?.key ?? '';
  keys = { critical: keyOf('globex'), default: keyOf('acme'), sheddable: null };
  base = api.baseUrl;
  port = Number(new URL(api.baseUrl).port);
}, 120_000);

afterAll(async () => {
  proxy?.release();
  await api?.stop();
  await proxy?.close();
  rmSync(scratch, { recursive: true, force: true });
});

/** A JSON request body of exactly `bytes` bytes asking `me`, padded in a variable the operation does not declare (ignored). */
function paddedBody(bytes: number): string {
  const shape = (pad: string): string => JSON.stringify({ query: '{ me { tenant } }', variables: { pad } });
  return shape('x'.repeat(bytes - Buffer.byteLength(shape(''))));
}

async function metricsText(): Promise<string> {
  return await (await fetch(`${base}/metrics`)).text();
}

/** Sum of a metric's samples whose line starts with `prefix` (name and, optionally, labels). */
function sample(text: string, prefix: string): number {
  return text
    .split('\n')
    .filter((line) => line.startsWith(prefix))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

/**
 * POSTs a body of `totalBytes` on a raw socket, declared by Content-Length or chunked, and stops
 * writing as soon as an answer arrives or the server closes the connection.
 * @returns the raw answer and how many body bytes the socket accepted
 */
async function postHuge(input: {
  totalBytes: number;
  isChunked: boolean;
  /** Send `Expect: 100-continue` and the body only after `100 Continue`. */
  isContinueExpected?: boolean;
}): Promise<{ reply: string; sentBytes: number }> {
  const socket = connect(port, '127.0.0.1');
  let reply = '';
  let sentBytes = 0;
  socket.on('data', (chunk: Buffer) => (reply += chunk.toString('latin1')));
  // EPIPE / ECONNRESET once the server has closed the connection: expected
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolveClose) => socket.once('close', () => resolveClose()));
  let isClosed = false;
  void closed.then(() => (isClosed = true));
  await new Promise<void>((resolveConnect) => socket.once('connect', () => resolveConnect()));
  const length = input.isChunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${input.totalBytes}`;
  const expect100 = input.isContinueExpected === true ? 'Expect: 100-continue\r\n' : '';
  socket.write(
    `POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${length}\r\n${expect100}Connection: close\r\n\r\n`,
  );
  if (input.isContinueExpected === true) {
    await waitFor('an answer to Expect: 100-continue', () => reply !== '' || isClosed);
    if (reply.startsWith('HTTP/1.1 100 ')) reply = '';
  }
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  const frame = input.isChunked ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]) : chunk;
  while (sentBytes < input.totalBytes && reply === '' && !isClosed) {
    sentBytes += chunk.length;
    if (!socket.write(frame)) await Promise.race([new Promise((resolveDrain) => socket.once('drain', resolveDrain)), closed]);
  }
  if (!isClosed && input.isChunked) socket.write('0\r\n\r\n');
  await closed;
  return { reply, sentBytes };
}

describe('the request body cap', () => {
  it('serves a body at the cap, refuses one a byte over and 50 MB ones (declared or chunked) with 413 without keeping them', async () => {
    const rssBefore = sample(await metricsText(), 'process_resident_memory_bytes ');
    const post = (body: string): Promise<Response> =>
      fetch(`${base}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${keys.critical ?? ''}` },
        body,
      });
    // when a body of exactly the cap is sent
    const atCap = await post(paddedBody(MAX_BODY_BYTES));
    // then it is served
    expect(atCap.status).toBe(200);
    expect(await atCap.json()).toMatchObject({ data: { me: { tenant: 'globex' } } });
    // when one a byte over the cap, and two of 50 MB (declared, chunked), are sent
    const overByOne = await postHuge({ totalBytes: MAX_BODY_BYTES + 1, isChunked: false });
    const declared = await postHuge({ totalBytes: 50 * MIB, isChunked: false });
    const chunked = await postHuge({ totalBytes: 50 * MIB, isChunked: true });
    // then each is a 413 with the stable code, and the server stopped reading long before 50 MB
    for (const { reply } of [overByOne, declared, chunked]) {
      expect(reply).toMatch(/^HTTP\/1\.1 413 /);
      const body = JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)) as unknown;
      expect(body).toEqual({
        errors: [
          {
            message: `the request body is larger than ${MAX_BODY_BYTES} bytes`,
            extensions: { code: 'REQUEST_TOO_LARGE', max: MAX_BODY_BYTES },
          },
        ],
      });
    }
    // and a client that asks first (Expect: 100-continue) is refused before it sends the body
    const asked = await postHuge({ totalBytes: 50 * MIB, isChunked: false, isContinueExpected: true });
    expect(asked.reply).toMatch(/^HTTP\/1\.1 413 /);
    expect(asked.sentBytes).toBe(0);
    expect(declared.sentBytes).toBeLessThan(25 * MIB);
    expect(chunked.sentBytes).toBeLessThan(25 * MIB);
    // and the process did not grow by the bodies' size, counted the refusals, and still serves
    const after = await metricsText();
    expect(sample(after, 'process_resident_memory_bytes ') - rssBefore).toBeLessThan(8 * MIB);
    expect(sample(after, 'tollgate_refusals_total{code="REQUEST_TOO_LARGE"}')).toBe(4);
    expect((await post(paddedBody(1_000))).status).toBe(200);
  });
});

interface Answer {
  criticality: Criticality;
  status: number;
  retryAfter: string | null;
  body: {
    data?: { me?: { tenant: string } } | null;
    errors?: { extensions?: { code?: string } }[];
    extensions?: { cost?: { receipt: string | null; degraded?: string } };
  };
}

/** `{ me }` as a caller of the given criticality (sheddable: anonymous). */
async function askMe(criticality: Criticality): Promise<Answer> {
  const key = keys[criticality];
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key === null ? {} : { authorization: `Bearer ${key}` }) },
    body: JSON.stringify({ query: '{ me { tenant } }' }),
  });
  return {
    criticality,
    status: response.status,
    retryAfter: response.headers.get('retry-after'),
    body: (await response.json()) as Answer['body'],
  };
}

const countBy = (answers: Answer[], criticality: Criticality): number =>
  answers.filter((answer) => answer.criticality === criticality).length;

describe('admission control', () => {
  it('under overload sheds sheddable requests first and critical ones last, each 503 OVERLOADED with Retry-After, before the decider', async () => {
    // given each class served once (scripts loaded, connections open)
    for (const criticality of ['sheddable', 'default', 'critical'] as const) expect((await askMe(criticality)).status).toBe(200);
    const before = await metricsText();
    // when Redis stops answering the process and 60 requests of each class arrive at once, sheddable ones sent first
    // and critical ones last (so a bound that ignored criticality would fill up with sheddable work)
    proxy?.hold();
    const answered: Answer[] = [];
    const classes: Criticality[] = ['sheddable', 'default', 'critical'];
    const all = Promise.all(
      Array.from({ length: 180 }, async (_, index) => {
        const answer = await askMe(classes[Math.floor(index / 60)] ?? 'default');
        answered.push(answer);
        return answer;
      }),
    );
    // then all but the 8 the bound admits are answered while the admitted ones wait for Redis
    await waitFor('the shed requests to be answered', () => answered.length >= 180 - BOUNDS.critical);
    const shed = [...answered];
    expect(shed.length).toBe(180 - BOUNDS.critical);
    for (const answer of shed) {
      expect(answer.status).toBe(503);
      expect(answer.retryAfter).toBe('1');
      expect(answer.body.errors?.[0]?.extensions?.code).toBe('OVERLOADED');
    }
    // and sheddable work was admitted only below 4 in flight, default below 6, critical up to 8 (which class took
    // which slot depends on arrival order: these bounds are what holds for every order)
    const admittedOf = (criticality: Criticality): number => 60 - countBy(shed, criticality);
    expect(admittedOf('sheddable')).toBeLessThanOrEqual(BOUNDS.sheddable);
    expect(admittedOf('sheddable') + admittedOf('default')).toBeLessThanOrEqual(BOUNDS.default);
    expect(admittedOf('critical')).toBeGreaterThanOrEqual(BOUNDS.critical - BOUNDS.default);
    // when Redis answers again
    proxy?.release();
    const answers = await all;
    // then the admitted 8 are served, each decided by the decider (a receipt, not degraded)
    const served = answers.filter((answer) => answer.status !== 503);
    expect(served).toHaveLength(BOUNDS.critical);
    for (const answer of served) {
      expect(answer.status).toBe(200);
      expect(answer.body.data?.me?.tenant).toBe(
        answer.criticality === 'sheddable' ? 'anonymous' : answer.criticality === 'default' ? 'acme' : 'globex',
      );
      expect(answer.body.extensions?.cost?.receipt).toEqual(expect.any(String));
      expect(answer.body.extensions?.cost?.degraded).toBeUndefined();
    }
    // and the shed ones never reached the decider, and are counted by class (scraped only now: a scrape reads Redis)
    const after = await metricsText();
    expect(sample(after, 'tollgate_decisions_total{') - sample(before, 'tollgate_decisions_total{')).toBe(BOUNDS.critical);
    for (const criticality of classes) {
      const shedMetric = `tollgate_shed_total{criticality="${criticality}",reason="in-flight"}`;
      expect(sample(after, shedMetric) - sample(before, shedMetric)).toBe(countBy(shed, criticality));
    }
    expect(after).toMatch(/^tollgate_event_loop_lag_seconds\{quantile="0\.99"\} [0-9.e-]+$/m);
    // (no slot outlives its request)
    expect(after).toContain('\ntollgate_in_flight_requests 0\n');
    // and every slot was given back: four sheddable requests at once are admitted again
    const again = await Promise.all(Array.from({ length: BOUNDS.sheddable }, async () => askMe('sheddable')));
    expect(again.map((answer) => answer.status)).toEqual([200, 200, 200, 200]);
  });
});
