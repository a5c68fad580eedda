/**
 * A busy API process is not a sick Redis (issue 14, DESIGN §8a): the API as
 * `npm start` runs it, Redis healthy and idle (a Redis of this file's own, as
 * `npm start` configures it: the suite's shared Redis is busy with other
 * files' traffic, which is a slow Redis as far as the API can tell), one client firing bursts of 50,
 * 200 and 1,000 concurrent requests, each on its own socket. No decision
 * degrades (the breaker never opens); every request is either decided by
 * Redis or shed by admission control (503 OVERLOADED, counted in
 * `tollgate_shed_total`), and the limit holds: of the decided ones, exactly
 * its capacity is admitted, the rest denied.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startRedis, stopProcess, type ManagedProcess } from '../../infra/services.js';
import { parseLimitId } from '../../src/shared/index.js';
import { burst, metricSum, startApiServer, storeTenantPlan, type ApiServer } from '../support/api-server.js';

const scratch = mkdtempSync(join(tmpdir(), 'tollgate-burst-'));
/** 7 units: the connection and its 6 nodes (the catalog has more than 6 products, so nothing is refunded). */
const COST_7 = JSON.stringify({ query: '{ products(first: 6) { nodes { id } } }' });
const CAPACITY_REQUESTS = 100;
const tenants: { key: string }[] = [];
let api: ApiServer | undefined;
let redisProc: ManagedProcess | undefined;
let redisUrl = '';

beforeAll(async () => {
  for (let i = 0; i < 3; i += 1) {
    tenants.push(
      await storeTenantPlan([
        {
          id: parseLimitId('burst'),
          scope: 'tenant',
          // no refill worth counting during the test: what is admitted is exactly the capacity
          algorithm: { kind: 'token-bucket', capacity: 7 * CAPACITY_REQUESTS, refillAmount: 1, refillPeriodMs: 3_600_000 },
          mode: 'hard',
          // a degraded decision is a visible 503, and never admits past the limit
          onDeciderDown: 'closed',
        },
      ]),
    );
  }
  // Redis' share is 250 ms, not 50: on the shared 2-core test machine (load 8 while other files run) Redis itself is
  // descheduled for tens of ms, which is a slow Redis as far as the API can tell. Without the fix a burst's waits
  // behind the busy loop are seconds, so the test fails on main at 250 ms as at 50.
  const port = await freePort();
  // Redis records any stall of its own over 20 ms (LATENCY LATEST), shown if a decision degrades anyway
  redisProc = await startRedis({ dataDir: scratch, port, appendfsync: 'everysec', extraArgs: ['--latency-monitor-threshold', '20'] });
  redisUrl = `redis://127.0.0.1:${port}`;
  api = await startApiServer({ scratch, env: { DECIDER_TIMEOUT_MS: '250', REDIS_URL: redisUrl } });
});

afterAll(async () => {
  await api?.stop();
  if (redisProc !== undefined) await stopProcess(redisProc);
  rmSync(scratch, { recursive: true, force: true });
});

/** The failed calls by cause, and the stalls Redis recorded itself. */
async function whyDegraded(baseUrl: string): Promise<string> {
  const causes: string[] = [];
  for (const cause of ['timeout', 'wall-clock-cap', 'lost-connection', 'unreachable']) {
    causes.push(`${cause} ${await metricSum(baseUrl, 'tollgate_decider_call_failures_total', new RegExp(`cause="${cause}"`))}`);
  }
  const redis = new Redis(redisUrl);
  try {
    return `failed decider calls: ${causes.join(', ')}; Redis stalls (LATENCY LATEST): ${JSON.stringify(await redis.call('LATENCY', 'LATEST'))}`;
  } finally {
    redis.disconnect();
  }
}

describe('bursts from one client against the API process (Redis healthy)', () => {
  it.each([
    [50, 0],
    [200, 1],
    [1_000, 2],
  ])(
    'a burst of %i concurrent requests degrades nothing, sheds only by admission control and admits exactly the capacity',
    async (count, tenantIndex) => {
      const server = api as ApiServer;
      const { key } = tenants[tenantIndex] as { key: string };
      const shedBefore = await metricSum(server.baseUrl, 'tollgate_shed_total');
      // when one client sends the burst at once
      const statuses = await burst({ baseUrl: server.baseUrl, key, body: COST_7, count });
      // then no decision was degraded and the breaker is closed (if one did: why its call failed, and Redis' own stalls)
      const degraded = await metricSum(server.baseUrl, 'tollgate_decisions_total', /kind="degraded/);
      expect(degraded, degraded === 0 ? '' : await whyDegraded(server.baseUrl)).toBe(0);
      expect(await metricSum(server.baseUrl, 'tollgate_decider_breaker_state')).toBe(0);
      // and every 503 is a request shed before the decider (OVERLOADED), none refused as unavailable
      const shed = (await metricSum(server.baseUrl, 'tollgate_shed_total')) - shedBefore;
      const count503 = statuses.filter((status) => status === 503).length;
      expect(count503).toBe(shed);
      // and the limit held exactly over the decided ones: its capacity admitted, the rest denied
      const admitted = Math.min(count - shed, CAPACITY_REQUESTS);
      expect({
        200: statuses.filter((status) => status === 200).length,
        429: statuses.filter((status) => status === 429).length,
        503: count503,
      }).toEqual({ 200: admitted, 429: count - shed - admitted, 503: shed });
    },
  );
});
