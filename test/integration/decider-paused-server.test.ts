/**
 * A sick Redis still opens the breaker (issue 14): the API as `npm start` runs
 * it, on a Redis of this file's own that is paused (SIGSTOP) while traffic
 * flows. The breaker opens, fail-closed tenants get 503 LIMITER_UNAVAILABLE
 * and fail-open tenants are admitted as degraded; after SIGCONT it closes and
 * decisions come from Redis again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startRedis, stopProcess, type ManagedProcess } from '../../infra/services.js';
import type { LimitSpec } from '../../src/decider/index.js';
import { parseLimitId } from '../../src/shared/index.js';
import { metricSum, startApiServer, storeTenantPlan, type ApiServer } from '../support/api-server.js';
import { waitFor } from '../support/poll.js';

const scratch = mkdtempSync(join(tmpdir(), 'tollgate-paused-'));
const COST_7 = JSON.stringify({ query: '{ products(first: 6) { nodes { id } } }' });
let redisProc: ManagedProcess | undefined;
let api: ApiServer | undefined;
let closed: { key: string };
let open: { key: string };

const bucket = (onDeciderDown: LimitSpec['onDeciderDown']): LimitSpec[] => [
  {
    id: parseLimitId('burst'),
    scope: 'tenant',
    algorithm: { kind: 'token-bucket', capacity: 10_000_000, refillAmount: 1, refillPeriodMs: 3_600_000 },
    mode: 'hard',
    onDeciderDown,
  },
];

beforeAll(async () => {
  // a fail-closed and a fail-open tenant
  closed = await storeTenantPlan(bucket('closed'));
  open = await storeTenantPlan(bucket('open'));
  const port = await freePort();
  redisProc = await startRedis({ dataDir: scratch, port, appendfsync: 'everysec' });
  api = await startApiServer({ scratch, env: { REDIS_URL: `redis://127.0.0.1:${port}` } });
});

afterAll(async () => {
  if (redisProc !== undefined) {
    try {
      process.kill(redisProc.pid, 'SIGCONT');
    } catch {
      // not running
    }
  }
  await api?.stop();
  if (redisProc !== undefined) await stopProcess(redisProc);
  rmSync(scratch, { recursive: true, force: true });
});

interface Answer {
  status: number;
  degraded: string | null;
}

async function post(baseUrl: string, key: string): Promise<Answer> {
  const response = await fetch(`${baseUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: COST_7,
  });
  await response.arrayBuffer();
  return { status: response.status, degraded: response.headers.get('tollgate-degraded') };
}

describe('Redis paused under traffic, against the API process', () => {
  it('opens the breaker, applies each policy, and closes after SIGCONT', async () => {
    const server = api as ApiServer;
    const redis = redisProc as ManagedProcess;
    // given each tenant with 4 callers sending one request after another
    const answers: { tenant: 'closed' | 'open'; answer: Answer }[] = [];
    let isRunning = true;
    const callers = [closed, open].flatMap((tenant, index) =>
      Array.from({ length: 4 }, async () => {
        while (isRunning) answers.push({ tenant: index === 0 ? 'closed' : 'open', answer: await post(server.baseUrl, tenant.key) });
      }),
    );
    try {
      await waitFor('traffic decided by Redis', () => answers.filter(({ answer }) => answer.status === 200).length >= 20);
      expect(await metricSum(server.baseUrl, 'tollgate_decisions_total', /kind="degraded/)).toBe(0);
      // when Redis stops answering
      process.kill(redis.pid, 'SIGSTOP');
      // then the breaker opens, fail-closed requests are refused and fail-open ones admitted as degraded
      await waitFor('the breaker to open', async () => (await metricSum(server.baseUrl, 'tollgate_decider_breaker_state')) === 2);
      const sinceOpen = answers.length;
      await waitFor('both policies answered while Redis is paused', () => {
        const recent = answers.slice(sinceOpen);
        return (
          recent.some(({ tenant, answer }) => tenant === 'closed' && answer.status === 503) &&
          recent.some(({ tenant, answer }) => tenant === 'open' && answer.status === 200 && answer.degraded === 'open')
        );
      });
      const whilePaused = answers.slice(sinceOpen);
      expect(whilePaused.filter(({ tenant, answer }) => tenant === 'closed' && answer.status === 200)).toEqual([]);
      // when Redis runs again
      process.kill(redis.pid, 'SIGCONT');
      // then the breaker closes and decisions come from Redis again
      await waitFor('the breaker to close', async () => (await metricSum(server.baseUrl, 'tollgate_decider_breaker_state')) === 0);
    } finally {
      isRunning = false;
      await Promise.all(callers);
    }
    expect(await post(server.baseUrl, closed.key)).toEqual({ status: 200, degraded: null });
    expect(await post(server.baseUrl, open.key)).toEqual({ status: 200, degraded: null });
  });
});
