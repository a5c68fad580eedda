/**
 * Degraded usage survives a restart (issue 15): the API as `npm start` runs it,
 * its Redis behind a proxy the test cuts, admits fail-open traffic as degraded
 * into its spool; it is SIGKILLed (a crash mid-write leaves a torn last line)
 * and started again on the same spool with Redis reachable and no later
 * outage: the restarted process replays the spool at start, and a real
 * metering worker puts every admitted unit in the ledger exactly once.
 */
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLimitId } from '../../src/shared/index.js';
import { metricSum, startApiServer, type ApiServer } from '../support/api-server.js';
import { meteredTenant, post, type Answer, type MeteredTenant } from '../support/degraded-usage.js';
import { waitFor } from '../support/poll.js';
import { testStack } from '../support/stack.js';
import { startSwitchProxy, type SwitchProxy } from '../support/switch-proxy.js';

const scratch = mkdtempSync(join(tmpdir(), 'tollgate-degraded-restart-'));
let proxy: SwitchProxy;
let metered: MeteredTenant;
const apis: ApiServer[] = [];

beforeAll(async () => {
  proxy = await startSwitchProxy(Number(new URL(testStack().redisUrl).port));
  metered = await meteredTenant([
    {
      id: parseLimitId('burst'),
      scope: 'tenant',
      algorithm: { kind: 'token-bucket', capacity: 1_000_000, refillAmount: 1, refillPeriodMs: 3_600_000 },
      mode: 'hard',
      onDeciderDown: 'open',
    },
  ]);
});

afterAll(async () => {
  for (const api of apis) await api.stop();
  await metered.close();
  await proxy.close();
  rmSync(scratch, { recursive: true, force: true });
});

/** The API on this file's spool, its Redis through the proxy, on the 16384 shards the allocator hands out. */
async function startApi(): Promise<ApiServer> {
  const redisUrl = new URL(testStack().redisUrl);
  redisUrl.port = String(proxy.port);
  const api = await startApiServer({
    scratch,
    env: { REDIS_URL: redisUrl.toString(), DECIDER_SHARDS: '16384', DECIDER_SPOOL_REPLAY_MS: '500' },
  });
  apis.push(api);
  return api;
}

describe('an API instance killed with degraded usage in its spool', () => {
  it(
    'replays the spool when it starts again: the ledger holds every admitted unit exactly once, without a later outage',
    { timeout: 240_000 },
    async () => {
      // given the API admitting a few requests through Redis
      const first = await startApi();
      const answers: Answer[] = [];
      for (let i = 0; i < 4; i += 1) answers.push(await post(first.baseUrl, metered.key));
      expect(answers.map((answer) => [answer.status, answer.degraded])).toEqual(Array.from({ length: 4 }, () => [200, null]));

      // when Redis becomes unreachable for it and 4 clients keep sending, one request after another
      proxy.cut();
      const degraded = (
        await Promise.all(
          Array.from({ length: 4 }, async () => {
            const mine: Answer[] = [];
            for (let i = 0; i < 8; i += 1) mine.push(await post(first.baseUrl, metered.key));
            return mine;
          }),
        )
      ).flat();
      answers.push(...degraded);
      // then each is admitted fail-open, marked degraded, and waits in the spool (shown on /metrics and /ready)
      expect(degraded.map((answer) => [answer.status, answer.degraded])).toEqual(Array.from({ length: 32 }, () => [200, 'open']));
      expect.soft(await metricSum(first.baseUrl, 'tollgate_spool_entries')).toBeGreaterThanOrEqual(32);
      expect.soft(await metricSum(first.baseUrl, 'tollgate_spool_oldest_age_seconds')).toBeGreaterThanOrEqual(0);
      const ready = (await (await fetch(`${first.baseUrl}/ready`)).json()) as { detail?: { spool?: { entries?: number } } };
      expect.soft(ready.detail?.spool?.entries ?? 0).toBeGreaterThanOrEqual(32);

      // when the process is killed, a write it was making is left torn, and it starts again with Redis reachable
      first.child.kill('SIGKILL');
      await waitFor('the API to die', () => first.child.exitCode !== null || first.child.signalCode !== null);
      appendFileSync(join(scratch, 'spool'), `{"kind":"event","tenant":"${metered.tenant}","eventId":"r-torn`);
      proxy.restore();
      const second = await startApi();

      // then, with no outage after the restart, the ledger holds every admitted unit exactly once
      const expectedUnits = answers.reduce((sum, answer) => sum + answer.actual, 0);
      expect(expectedUnits).toBe(36 * 7);
      const ledger = await waitFor(
        'the ledger to hold every admitted unit',
        async () => {
          const partition = await metered.ledger();
          return partition.entrySum >= expectedUnits && partition;
        },
        { timeoutMs: 90_000, intervalMs: 500 },
      );
      expect(ledger.entrySum).toBe(expectedUnits);
      expect(ledger.balance?.amount).toBe(expectedUnits);
      expect(new Set(ledger.entryIds).size).toBe(ledger.entryIds.length);
      // and the restarted process's spool is empty, its torn line skipped
      await waitFor('the spool to be empty', async () => (await metricSum(second.baseUrl, 'tollgate_spool_entries')) === 0);
      expect(await metricSum(second.baseUrl, 'tollgate_spool_lost_units')).toBe(0);
      // and a request now is decided by Redis again
      expect(await post(second.baseUrl, metered.key)).toEqual({ status: 200, degraded: null, actual: 7 });
    },
  );
});
