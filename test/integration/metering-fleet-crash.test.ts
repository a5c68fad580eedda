/**
 * The metering fleet in a crash loop (issue 19): 256 `meter/<shard>` pumps
 * (test/support/fleet-harness.ts), requests decided and settled by the real
 * decider (lua/decide.lua, settle.lua: what the API admits) the whole time,
 * and the worker (test/support/meter-worker.ts, which ensures the fleet at
 * every start like the real one) SIGKILLed 30 times, each at a seeded moment
 * after it polls, and restarted each time. After the last restart, traffic
 * still flowing, the oldest unacknowledged entry is younger than 5 s within
 * RECOVERY_BOUND_MS; the last worker lets no workflow task time out; and the
 * ledger holds exactly what was admitted, per tenant: one entry per admitted
 * request and one per settlement.
 *
 * infra/test.sh runs this file alone, after the rest (beside another file the
 * 2-core machine is too busy to say anything about recovery time).
 * Replay a failing run with TOLLGATE_FLEET_SEED=<the printed seed> (the kill moments follow the seed).
 */
import { randomInt } from 'node:crypto';
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { RedisDecider } from '../../src/decider/index.js';
import { ledgerTableName } from '../../src/metering/index.js';
import { systemClock } from '../../src/shared/index.js';
import { pumpIdOf } from '../support/pumps.js';
import { waitFor } from '../support/poll.js';
import { describeTimeouts, pumpRunsSince, timeoutsSince } from '../support/fleet.js';
import { startFleetHarness, type FleetHarness } from '../support/fleet-harness.js';
import { readLedgerPartition } from '../support/ledger.js';
import { testStack, uniqueTenant } from '../support/stack.js';
import { AdmittedRecord, runTraffic } from '../support/traffic.js';
import { seededRandom } from '../support/usage-events.js';
import { sleep } from '../support/time.js';

const SHARDS = 256;
const ALL_SHARDS = Array.from({ length: SHARDS }, (_, shard) => shard);
/** METER_SHARDS_PER_PUMP's default: 16 pumps own the 256 shards. */
const SHARDS_PER_PUMP = 16;
const CRASHES = Number(process.env['TOLLGATE_FLEET_CRASHES'] ?? 30);
/** A life is killed this long after it polls, plus up to KILL_SPREAD_MS (seeded). */
const KILL_MIN_MS = 200;
const KILL_SPREAD_MS = 2_500;
/** The stated recovery bound: after the last restart, traffic flowing, the lag is under 5 s within this long. */
const RECOVERY_BOUND_MS = 90_000;
const seed = Number(process.env['TOLLGATE_FLEET_SEED'] ?? randomInt(1, 2 ** 31));
/** The kill moments draw from their own generator, so that a seed replays them whatever the traffic drew. */
const killRandom = seededRandom(seed + 1);
let fleet: FleetHarness;

beforeAll(async () => {
  console.log(`[metering-fleet-crash] seed ${seed} (replay with TOLLGATE_FLEET_SEED=${seed})`);
  fleet = await startFleetHarness({
    name: 'metering-fleet-crash',
    shards: SHARDS,
    random: seededRandom(seed),
    // every setting its default but a 3 s heartbeat timeout (so the claim of a killed batch's entries) and the batch size
    settings: { METER_BATCH_SIZE: '50', METER_HEARTBEAT_TIMEOUT_MS: '3000' },
  });
}, 180_000);

afterAll(() => fleet.close());

/** Decides and settles requests of `tenants` through the real decider until stopped. */
function steadyRequests(tenants: readonly string[], record: AdmittedRecord): { stop: () => Promise<void> } {
  const decider = new RedisDecider(fleet.deciderRedis, { shardCount: SHARDS, clock: systemClock });
  const random = seededRandom(seed + 2);
  let isRunning = true;
  const loop = (async () => {
    while (isRunning) {
      // a decision past the decider's wall-clock cap on a busy machine is retried with the same request id (a replay if admitted)
      await runTraffic({ decider, tenants, requests: 8, random, record, onError: () => sleep(200) });
      await sleep(100);
    }
  })();
  return {
    stop: async () => {
      isRunning = false;
      await loop;
    },
  };
}

describe.runIf(CRASHES > 0)('the metering fleet at 256 shards in a crash loop', () => {
  it(`recovers and ledgers exactly what the decider admitted per tenant after ${CRASHES} SIGKILLs at seeded moments under traffic`, async () => {
    // given requests decided and settled by the real decider on 48 tenants (spread over the 256 shards)
    const record = new AdmittedRecord();
    const traffic = steadyRequests(
      Array.from({ length: 48 }, () => uniqueTenant('crash')),
      record,
    );
    onTestFinished(() => traffic.stop());
    // when the worker (keeping its cache and sticky queue, as the real one) is SIGKILLed 30 times, each at a seeded
    // moment after it polls, and restarted each time
    const kills: number[] = [];
    let life = fleet.startMeterWorker();
    onTestFinished(() => void life.child.kill('SIGKILL'));
    for (let crash = 0; crash < CRASHES; crash += 1) {
      await life.ready;
      const afterMs = KILL_MIN_MS + Math.floor(killRandom() * KILL_SPREAD_MS);
      await sleep(afterMs);
      life.child.kill('SIGKILL');
      expect(await life.exited).toBeNull();
      kills.push(afterMs);
      life = fleet.startMeterWorker();
    }
    await life.ready;
    const restartMs = Date.now();
    // then, traffic still flowing, the oldest unacknowledged entry is younger than 5 s within the stated bound
    let lastLag = await fleet.lag();
    await waitFor(
      `the lag to fall under 5 s within ${RECOVERY_BOUND_MS} ms of the last restart`,
      async () => {
        lastLag = await fleet.lag();
        return lastLag.oldestUnacknowledgedAgeSeconds < 5;
      },
      { timeoutMs: RECOVERY_BOUND_MS, intervalMs: 500 },
    ).catch((error: unknown) => {
      throw new Error(`lag still ${JSON.stringify(lastLag)}`, { cause: error });
    });
    const recoveredMs = Date.now() - restartMs;
    await traffic.stop();
    // and once traffic stops, the fleet drains every entry
    await waitFor('the lag to return to 0', async () => (await fleet.lag()).unacknowledged === 0, { timeoutMs: 120_000, intervalMs: 500 });
    const identity = `${life.child.pid}@${hostname()}`;
    const timeouts = timeoutsSince(await pumpRunsSince(fleet.client, restartMs), restartMs);
    console.log(
      `[metering-fleet-crash] seed ${seed}: ${CRASHES} kills at ${kills.join(',')} ms after polling; lag under 5 s ` +
        `${recoveredMs} ms after the last restart, traffic flowing; ${record.admitted} requests admitted; ` +
        `workflow task timeouts since: ${describeTimeouts(timeouts)}; the last worker is ${identity}`,
    );
    // and no workflow task the last worker took timed out (the killed workers' did, as they must)
    expect(timeouts.filter((timeout) => timeout.identity === identity)).toEqual([]);
    // and the ledger holds exactly what was admitted, per tenant: one entry per admitted request and per settlement
    expect(record.admitted).toBeGreaterThan(0);
    const table = ledgerTableName(testStack().tablePrefix);
    for (const [key, expected] of record.byPeriod) {
      const [tenant = '', periodStart = ''] = key.split('|');
      const partition = await readLedgerPartition(fleet.dynamo, { table, tenant, periodStart });
      expect(partition.balance, key).toEqual({ amount: expected.amount, entries: expected.eventIds.length });
      expect(partition.entrySum, key).toBe(expected.amount);
      expect(partition.entryIds, key).toEqual([...expected.eventIds].sort());
    }
    for (const shard of [0, SHARDS - 1]) {
      expect((await fleet.client.workflow.getHandle(pumpIdOf(shard, ALL_SHARDS, SHARDS_PER_PUMP)).describe()).status.name).toBe('RUNNING');
    }
    life.child.kill('SIGTERM');
    expect(await life.exited).toBe(0);
  }, 900_000);
});
