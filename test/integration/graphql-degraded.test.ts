/**
 * The GraphQL edge when the decider is sick, end to end over HTTP against a
 * Redis of this file's own that it pauses (SIGSTOP): a fail-open plan serves
 * and says so, a fail-closed plan answers 503 LIMITER_UNAVAILABLE, a local
 * backstop plan admits exactly what its in-process bucket holds; once Redis
 * answers again, decisions are normal.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startRedis, stopProcess, type ManagedProcess } from '../../infra/services.js';
import { FileSpool, ResilientDecider, createDeciderRedis, type DeciderRedis } from '../../src/decider/index.js';
import { createLogger, systemClock } from '../../src/shared/index.js';
import { waitFor } from '../support/poll.js';
import { bodyOf, codeOf, plan, slowBucket, testApp } from '../support/graphql.js';
import { uniqueTenant } from '../support/stack.js';

const scratch = mkdtempSync(join(tmpdir(), 'tollgate-graphql-degraded-'));
let port: number;
let redisProc: ManagedProcess;
let client: DeciderRedis;

beforeAll(async () => {
  port = await freePort();
  redisProc = await startRedis({ dataDir: scratch, port, appendfsync: 'everysec' });
  client = createDeciderRedis({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 250, connectTimeoutMs: 500 });
  client.on('error', () => undefined);
  await client.connect();
});

afterAll(async () => {
  client.disconnect();
  try {
    process.kill(redisProc.pid, 'SIGCONT');
  } catch {
    // not running
  }
  await stopProcess(redisProc);
  rmSync(scratch, { recursive: true, force: true });
});

const COST_7 = '{ products(first: 6) { nodes { id } } }';

describe('decider down', () => {
  it('fails open, fails closed or falls back to the local backstop, per plan', async () => {
    // given one app, three plans that differ only in onDeciderDown
    const decider = new ResilientDecider(client, {
      shardCount: 16,
      clock: systemClock,
      logger: createLogger({ level: 'silent', name: 'test' }),
      spool: new FileSpool(join(scratch, 'api.spool')),
      breaker: { failureThreshold: 2, cooldownMs: 200, latencyBudgetMs: 1_000 },
      backstop: { instances: () => 1, ceilingUnits: 10_000 },
    });
    const api = testApp({
      decider,
      plans: [
        plan('open', [slowBucket(1_000_000, { onDeciderDown: 'open' })]),
        plan('closed', [slowBucket(1_000_000, { onDeciderDown: 'closed' })]),
        plan('local', [slowBucket(100, { onDeciderDown: 'local' })]),
      ],
    });
    const openKey = api.keyFor(uniqueTenant('open'), 'open');
    const closedKey = api.keyFor(uniqueTenant('closed'), 'closed');
    const localKey = api.keyFor(uniqueTenant('local'), 'local');
    expect((await api.post({ query: COST_7 }, { key: openKey })).status).toBe(200);

    // when Redis stops answering
    process.kill(redisProc.pid, 'SIGSTOP');
    let closed: Response;
    let open: Response[];
    let local: Response[];
    let resolverCallsBeforeClosed: number;
    let resolverCallsAfterClosed: number;
    try {
      resolverCallsBeforeClosed = api.store.resolverCalls;
      closed = await api.post({ query: COST_7 }, { key: closedKey });
      resolverCallsAfterClosed = api.store.resolverCalls;
      open = await Promise.all(Array.from({ length: 3 }, () => api.post({ query: COST_7 }, { key: openKey })));
      // the breaker is open now: the backstop decides at once (100 units / 7 → 14)
      local = [];
      for (let i = 0; i < 20; i += 1) local.push(await api.post({ query: COST_7 }, { key: localKey }));
    } finally {
      process.kill(redisProc.pid, 'SIGCONT');
    }

    // then fail-closed refuses with 503 and runs nothing
    expect(closed.status).toBe(503);
    expect(closed.headers.get('Retry-After')).toMatch(/^\d+$/);
    expect(codeOf(await bodyOf(closed))).toBe('LIMITER_UNAVAILABLE');
    expect(resolverCallsAfterClosed).toBe(resolverCallsBeforeClosed);
    // fail-open serves, marked degraded, with a receipt
    for (const response of open) {
      expect(response.status).toBe(200);
      expect(response.headers.get('Tollgate-Degraded')).toBe('open');
      const body = await bodyOf(response);
      expect(body.data).toMatchObject({ products: { nodes: expect.any(Array) as unknown } });
      expect(body.extensions?.cost).toMatchObject({
        requested: 7,
        actual: 7,
        degraded: 'open',
        receipt: expect.stringMatching(/^r-/) as unknown,
      });
    }
    // the local backstop admits exactly what its bucket holds
    expect(local.map((response) => response.status)).toEqual([
      ...Array.from({ length: 14 }, () => 200),
      ...Array.from({ length: 6 }, () => 429),
    ]);
    const refused = await bodyOf(local[19] as Response);
    expect(codeOf(refused)).toBe('RATE_LIMITED');
    expect(refused.errors?.[0]?.extensions?.['degraded']).toBe('local');

    // and once Redis answers again, decisions are normal (the breaker probes after its cooldown)
    const recovered = await waitFor(
      'a decision that is not degraded',
      async () => {
        const response = await api.post({ query: COST_7 }, { key: openKey });
        return response.headers.get('Tollgate-Degraded') === null && response;
      },
      { timeoutMs: 15_000, intervalMs: 50 },
    );
    expect(recovered.status).toBe(200);
    expect((await bodyOf(recovered)).extensions?.cost?.degraded).toBeUndefined();
  });
});
