/**
 * Overload of one API process by several tenants at once (issue 14), the API as `npm start` runs it with its
 * default in-flight bounds (128 in flight: sheddable shed from 64, default from 96, critical from 128):
 * - while one tenant bursts, another tenant's limit stays exact: no decision degrades, so no window in which
 *   limits are off, and the other tenant (a critical plan) is admitted exactly its capacity, never shed;
 * - shedding order: when more requests arrive at once than it has slots, those of sheddable plans are shed
 *   most (their bound is 64), then default ones (96), critical ones least (128): counted per class by the
 *   process itself, and seen per tenant by the clients.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Criticality } from '../../src/graphql/index.js';
import { parseLimitId } from '../../src/shared/index.js';
import { burst, metricSum, startApiServer, storeTenantPlan, type ApiServer } from '../support/api-server.js';

const scratch = mkdtempSync(join(tmpdir(), 'tollgate-overload-'));
/** 7 units: the connection and its 6 nodes (the catalog has more than 6 products, so nothing is refunded). */
const COST_7 = JSON.stringify({ query: '{ products(first: 6) { nodes { id } } }' });
const CLASSES = ['sheddable', 'default', 'critical'] as const;
let api: ApiServer | undefined;
/** The tenants of the tests, stored before the API starts (it follows the plans live, a new plan reaches it within seconds). */
let bursting: { key: string };
let other: { key: string };
let perClass: { key: string }[];
/** A plan of one tenant bucket holding `requests` requests of 7 units, with no refill worth counting during the test. */
function bucketOf(requests: number, criticality: Criticality): Promise<{ tenant: string; key: string }> {
  const limit = {
    id: parseLimitId('bucket'),
    scope: 'tenant' as const,
    algorithm: { kind: 'token-bucket' as const, capacity: 7 * requests, refillAmount: 1, refillPeriodMs: 3_600_000 },
    mode: 'hard' as const,
    // a degraded decision would be a visible 503 LIMITER_UNAVAILABLE, and never admits past the limit
    onDeciderDown: 'closed' as const,
  };
  return storeTenantPlan([limit], { criticality });
}

const count = (statuses: number[], status: number): number => statuses.filter((value) => value === status).length;

beforeAll(async () => {
  bursting = await bucketOf(10_000, 'default');
  other = await bucketOf(10, 'critical');
  perClass = await Promise.all(CLASSES.map(async (criticality) => bucketOf(10_000, criticality)));
  // Redis' share is 250 ms, as in the burst test: on the shared 2-core machine Redis itself is descheduled for tens of ms
  api = await startApiServer({ scratch, env: { DECIDER_TIMEOUT_MS: '250' } });
});

afterAll(async () => {
  await api?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

describe('one API process overloaded by several tenants', () => {
  it("keeps another tenant's limit exact while one tenant bursts 1,000 concurrent requests", async () => {
    const server = api as ApiServer;
    // given a bursting tenant (default plan, a large bucket) and another tenant on a critical plan with a bucket of 10 requests
    const degradedBefore = await metricSum(server.baseUrl, 'tollgate_decisions_total', /kind="degraded/);
    const shedBefore = await metricSum(server.baseUrl, 'tollgate_shed_total');
    // when the first sends 1,000 requests at once and the other 30 (within the 32 slots only critical requests may use)
    const [burstStatuses, otherStatuses] = await Promise.all([
      burst({ baseUrl: server.baseUrl, key: bursting.key, body: COST_7, count: 1_000 }),
      burst({ baseUrl: server.baseUrl, key: other.key, body: COST_7, count: 30 }),
    ]);
    // then no decision degraded (no moment in which limits were off) and the breaker stayed closed
    expect(await metricSum(server.baseUrl, 'tollgate_decisions_total', /kind="degraded/)).toBe(degradedBefore);
    expect(await metricSum(server.baseUrl, 'tollgate_decider_breaker_state')).toBe(0);
    // and the other tenant got exactly its capacity, the rest denied by its limit, none shed
    expect({
      200: count(otherStatuses, 200),
      429: count(otherStatuses, 429),
      other: 30 - count(otherStatuses, 200) - count(otherStatuses, 429),
    }).toEqual({ 200: 10, 429: 20, other: 0 });
    // and the bursting tenant was admitted or shed by admission control (OVERLOADED), never refused as unavailable
    expect(count(burstStatuses, 200) + count(burstStatuses, 503)).toBe(1_000);
    expect(count(burstStatuses, 503)).toBeGreaterThan(0);
    expect((await metricSum(server.baseUrl, 'tollgate_shed_total')) - shedBefore).toBe(count(burstStatuses, 503));
  });

  it('sheds sheddable and default requests before critical ones, counted per class', async () => {
    const server = api as ApiServer;
    // given one tenant per criticality, each with more quota than it asks for
    const shedOf = async (criticality: string): Promise<number> =>
      metricSum(server.baseUrl, 'tollgate_shed_total', new RegExp(`criticality="${criticality}"`));
    const shedBefore = await Promise.all(CLASSES.map(shedOf));
    // when each sends 100 requests at once, all three together (300 concurrent, their requests interleaved on
    // the wire), three times: far more than the 128 slots, so sheddable requests find their 64 slots full first and
    // default ones their 96 (with 60 each, 180 at once, a quick process kept under 96 in flight: no default shed)
    const statuses: number[][] = [[], [], []];
    for (let wave = 0; wave < 3; wave += 1) {
      const sent = Array.from({ length: 100 }, () =>
        perClass.map(async ({ key }) => (await burst({ baseUrl: server.baseUrl, key, body: COST_7, count: 1 }))[0] ?? 0),
      );
      const answers = await Promise.all(CLASSES.map(async (_, i) => Promise.all(sent.map(async (round) => round[i] ?? 0))));
      answers.forEach((perClass, i) => statuses[i]?.push(...perClass));
    }
    // then every request was admitted or refused with a 503, and each shed the process counted is one of those 503s
    // (on a loaded machine a few 503s may be decisions refused while Redis was descheduled: the burst test's concern)
    const refused = statuses.map((perTenant) => count(perTenant, 503));
    expect(statuses.map((perTenant) => count(perTenant, 200) + count(perTenant, 503))).toEqual([300, 300, 300]);
    const shed = await Promise.all(CLASSES.map(async (criticality, i) => (await shedOf(criticality)) - (shedBefore[i] ?? 0)));
    expect(shed.filter((value, i) => value > (refused[i] ?? 0))).toEqual([]);
    // and critical requests were shed least. (Sheddable and default ones are both shed whenever more than 96 are in
    // flight, which these waves keep the process at most of the time: their counts came out 84/37, 86/38 and 52/56 in
    // three runs, so their order is not asserted over the socket; graphql-admission.test.ts pins it in-process.)
    const [sheddable = 0, normal = 0, critical = 0] = shed;
    expect(sheddable, `shed per class ${JSON.stringify(shed)}`).toBeGreaterThan(critical);
    expect(normal, `shed per class ${JSON.stringify(shed)}`).toBeGreaterThan(critical);
  });
});
