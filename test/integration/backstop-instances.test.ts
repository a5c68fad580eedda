/**
 * The local backstop divides each limit by the live instances (issue 15):
 * three API processes as `npm start` runs them count each other by heartbeats
 * while Redis answers; then Redis becomes unreachable for all three (a proxy
 * the test cuts) and parallel traffic of one tenant on a `local` plan goes
 * through all three. Together they admit at most the limit (the stated bound,
 * N' = N = 3: L · N'/N = L); once Redis is back their spools replay and a real
 * metering worker puts exactly the admitted units in the ledger.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLimitId } from '../../src/shared/index.js';
import { metricSum, startApiServer, type ApiServer } from '../support/api-server.js';
import { meteredTenant, post, type MeteredTenant } from '../support/degraded-usage.js';
import { waitFor } from '../support/poll.js';
import { testStack } from '../support/stack.js';
import { startSwitchProxy, type SwitchProxy } from '../support/switch-proxy.js';

const INSTANCES = 3;
/** The tenant's limit, in units; a request costs 7. */
const LIMIT = 210;
const COST = 7;
const scratch = mkdtempSync(join(tmpdir(), 'tollgate-backstop-instances-'));
let proxy: SwitchProxy;
let metered: MeteredTenant;
const apis: ApiServer[] = [];

beforeAll(async () => {
  proxy = await startSwitchProxy(Number(new URL(testStack().redisUrl).port));
  metered = await meteredTenant([
    {
      id: parseLimitId('burst'),
      scope: 'tenant',
      algorithm: { kind: 'token-bucket', capacity: LIMIT, refillAmount: 1, refillPeriodMs: 3_600_000 },
      mode: 'hard',
      onDeciderDown: 'local',
    },
  ]);
  // three instances of one deployment of this file's own, each with a spool of its own, Redis through the proxy
  const redisUrl = new URL(testStack().redisUrl);
  redisUrl.port = String(proxy.port);
  const deployment = `bi-${randomBytes(4).toString('hex')}`;
  // one after another: each start is seconds of CPU on the 2-core test machine
  for (let index = 0; index < INSTANCES; index += 1) {
    const own = join(scratch, `api-${index}`);
    mkdirSync(own);
    apis.push(
      await startApiServer({
        scratch: own,
        env: {
          REDIS_URL: redisUrl.toString(),
          DECIDER_SHARDS: '16384',
          DECIDER_SPOOL_REPLAY_MS: '500',
          DECIDER_DEPLOYMENT: deployment,
          DECIDER_INSTANCES_HEARTBEAT_MS: '200',
        },
      }),
    );
  }
});

afterAll(async () => {
  await Promise.all(apis.map((api) => api.stop()));
  await metered.close();
  await proxy.close();
  rmSync(scratch, { recursive: true, force: true });
});

describe('three API instances, Redis unreachable for all of them', () => {
  it(
    'admit at most the limit together through their local backstops, and bill exactly what they admitted',
    { timeout: 240_000 },
    async () => {
      // given three instances that each counted the three live instances
      const isCounted = await waitFor(
        'each instance to count three',
        async () => {
          for (const api of apis) if ((await metricSum(api.baseUrl, 'tollgate_decider_instances')) !== INSTANCES) return false;
          return true;
        },
        { timeoutMs: 20_000 },
      ).then(
        () => true,
        () => false,
      );
      expect.soft(isCounted).toBe(true);

      // when Redis becomes unreachable for all three and one tenant sends 40 requests at once to each
      proxy.cut();
      const perInstance = await Promise.all(
        apis.map((api) => Promise.all(Array.from({ length: 40 }, () => post(api.baseUrl, metered.key)))),
      );

      // then every answer comes from the backstop: admitted (degraded 'local') or refused with 429
      const all = perInstance.flat();
      expect(all.filter((answer) => !(answer.status === 200 && answer.degraded === 'local') && answer.status !== 429)).toEqual([]);
      // and each instance admitted at most its share, floor(210 / 3) = 70 units, all three together at most the limit
      const admittedUnits = perInstance.map((answers) => answers.reduce((sum, answer) => sum + answer.actual, 0));
      for (const units of admittedUnits) expect(units).toBeLessThanOrEqual(Math.floor(LIMIT / INSTANCES));
      const total = admittedUnits.reduce((sum, units) => sum + units, 0);
      expect(total).toBeLessThanOrEqual(LIMIT);
      expect(total).toBeGreaterThanOrEqual(COST * INSTANCES);

      // when Redis is back, their spools replay (no request needed) and the ledger holds exactly what was admitted
      proxy.restore();
      const ledger = await waitFor(
        'the ledger to hold the admitted units',
        async () => {
          const partition = await metered.ledger();
          return partition.entrySum >= total && partition;
        },
        { timeoutMs: 90_000, intervalMs: 500 },
      );
      for (const api of apis) {
        await waitFor('the spool to be empty', async () => (await metricSum(api.baseUrl, 'tollgate_spool_entries')) === 0);
      }
      expect((await metered.ledger()).entrySum).toBe(total);
      expect(ledger.balance?.amount).toBe(total);
    },
  );
});
