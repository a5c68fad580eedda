/**
 * A cold start of the worker with 1,024 shards (issue 19): DECIDER_SHARDS=1024,
 * 64 pumps of 16 shards (METER_SHARDS_PER_PUMP's default), on a Temporal dev
 * server and a Redis database of this file's own (test/support/fleet-harness.ts).
 * Each pump first gets a history of its own under traffic (rounds of one event
 * per shard until the median open run holds HISTORY_EVENTS events), written by
 * a meter worker. Then the worker stops, a backlog builds up on every shard
 * while no worker runs (past the sticky timeout), and the real worker entry
 * point (src/workflows/worker.ts) starts cold, sized by the pump count alone
 * (cache pumps + 128, activity slots pumps + 64): it replays all 64 pumps at
 * once and pumps all 1,024 shards. It drains the backlog and the next round
 * (steady pumping) without a single workflow task timeout; it reports /ready,
 * and the ledger holds every event once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../infra/services.js';
import { waitFor } from '../support/poll.js';
import { describeTimeouts, gauge, pumpRunsSince, scrape, startEntryPoint, timeoutsSince } from '../support/fleet.js';
import { startFleetHarness, type FleetHarness } from '../support/fleet-harness.js';
import { seededRandom } from '../support/usage-events.js';
import { sleep } from '../support/time.js';

const SHARDS = 1_024;
/** The pumps that own them (16 shards each, the default). */
const PUMPS = 64;
/** The median open run's history length the pumps reach before the cold start. */
const HISTORY_EVENTS = 60;
const BACKLOG_PER_SHARD = 5;
/** WORKER_STICKY_TIMEOUT_MS's default, which every life here runs with. */
const STICKY_TIMEOUT_MS = 10_000;
let fleet: FleetHarness;

beforeAll(async () => {
  fleet = await startFleetHarness({
    name: 'metering-fleet-cold',
    shards: SHARDS,
    random: seededRandom(1_024),
    settings: { METER_BATCH_SIZE: '50', METER_HEARTBEAT_TIMEOUT_MS: '5000', METER_IDLE_WAIT_MS: '5000', METER_MAX_TRANSACT_ITEMS: '50' },
  });
}, 180_000);

afterAll(() => fleet.close());

describe.runIf(process.env['TOLLGATE_TEST_FLEET_1024'] === '1')('a cold worker start with 1,024 shards (64 pumps)', () => {
  it('replays every pump with a history of its own and reaches steady pumping without a single workflow task timeout', async () => {
    // given 1,024 pumps, each with a history of its own
    const warm = fleet.startMeterWorker();
    await warm.ready;
    await waitFor('every pump to run', async () => (await fleet.client.workflow.count(`WorkflowType = 'meterPump'`)).count >= PUMPS, {
      timeoutMs: 180_000,
      intervalMs: 1_000,
    });
    let median = 0;
    for (let round = 0; median < HISTORY_EVENTS; round += 1) {
      await fleet.appendTraffic({ shards: SHARDS, perShard: 1, label: `round${round}` });
      await waitFor(`round ${round} to be pumped`, async () => (await fleet.lag()).unacknowledged === 0, {
        timeoutMs: 180_000,
        intervalMs: 500,
      });
      const sizes = (await pumpRunsSince(fleet.client, Date.now())).map((run) => run.events).sort((a, b) => a - b);
      median = sizes[Math.floor(sizes.length / 2)] ?? 0;
      console.log(`[metering-fleet-cold] round ${round}: ${sizes.length} open runs, history events median ${median}, max ${sizes.at(-1)}`);
    }

    // when the worker stops, a backlog builds up on every shard while no worker runs (longer than the sticky timeout:
    // what the stopping worker left behind, tasks on its sticky queue or taken while it shut down, is handed over or
    // timed out meanwhile, so every timeout counted below is the cold worker's), and the worker entry point starts cold
    warm.child.kill('SIGTERM');
    expect(await warm.exited).toBe(0);
    await sleep(STICKY_TIMEOUT_MS + 5_000);
    await fleet.appendTraffic({ shards: SHARDS, perShard: BACKLOG_PER_SHARD, label: 'backlog' });
    const metricsPort = await freePort();
    const coldStartMs = Date.now();
    const cold = startEntryPoint({ ...fleet.workerEnv(), WORKER_METRICS_PORT: String(metricsPort) });

    // then it drains the backlog, and pumps the next round too (steady pumping)
    await waitFor(
      'the backlog to drain',
      async () => {
        expect(cold.child.exitCode, cold.output()).toBeNull();
        return (await fleet.lag()).unacknowledged === 0;
      },
      { timeoutMs: 300_000, intervalMs: 1_000 },
    );
    const drainedMs = Date.now() - coldStartMs;
    await fleet.appendTraffic({ shards: SHARDS, perShard: 1, label: 'steady' });
    await waitFor('the next round to be pumped', async () => (await fleet.lag()).unacknowledged === 0, {
      timeoutMs: 180_000,
      intervalMs: 500,
    });
    const runs = await pumpRunsSince(fleet.client, coldStartMs);
    const timeouts = timeoutsSince(runs, coldStartMs);
    console.log(
      `[metering-fleet-cold] cold start of ${SHARDS} shards in ${PUMPS} pumps: backlog drained ${drainedMs} ms after the process started; ` +
        `${runs.length} runs open since; workflow task timeouts since: ${describeTimeouts(timeouts, coldStartMs)}`,
    );
    // and not one workflow task timed out since the cold start (no task it took ran past the task timeout, none waited
    // out its sticky queue)
    expect(timeouts).toEqual([]);
    // and it is ready, nothing waiting, no stall
    const health = await scrape(metricsPort);
    expect(health.readyBody).toEqual({ ready: true });
    expect(gauge(health.metrics, 'tollgate_meter_unacknowledged_entries')).toBe(0);
    expect(gauge(health.metrics, 'tollgate_meter_fleet_stalled')).toBe(0);
    // and every event is in the ledger exactly once
    await fleet.expectLedgerEqualsAppended();
    cold.child.kill('SIGTERM');
    expect(await cold.exited).toBe(0);
  }, 1_500_000);
});
