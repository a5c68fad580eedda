/**
 * The metering fleet at full size (issue 19): 256 shards, owned by 16
 * `meter/<first>-<last>` pumps (METER_SHARDS_PER_PUMP's default), on a
 * Temporal dev server of this file's own and a Redis database of its own
 * (test/support/fleet-harness.ts), with steady traffic.
 *
 * - Under steady traffic no pump run grows past METER_MAX_RUN_EVENTS (+ one
 *   batch); a worker start writes nothing into the running pumps' histories;
 *   after the workers stopped (longer than the sticky timeout) and a backlog
 *   built up, a cold start of the real worker entry point
 *   (src/workflows/worker.ts) drains the backlog without a task it took timing
 *   out (sticky-queue hand-overs while it is busy are counted and printed),
 *   and reports /ready with no lag and no stall.
 * - Flood (issue 14): ~17,000 usage entries land on the 256 streams at once; the lag rises,
 *   then falls to 0 (each pump batch is bounded by METER_BATCH_SIZE), the ledger is exact, nothing is
 *   dead-lettered.
 * The crash loop (30 SIGKILLs under traffic) is metering-fleet-crash.test.ts.
 *
 * Replay a failing run with TOLLGATE_FLEET_SEED=<the printed seed>.
 */
import { randomInt } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { freePort } from '../../infra/services.js';
import { waitFor } from '../support/poll.js';
import { describeTimeouts, gauge, pumpRunsSince, scrape, startEntryPoint, timeoutsSince } from '../support/fleet.js';
import { startFleetHarness, type FleetHarness } from '../support/fleet-harness.js';
import { seededRandom } from '../support/usage-events.js';
import { sleep } from '../support/time.js';

const SHARDS = 256;
/** The pumps that own them (16 shards each, the default). */
const PUMPS = 16;
/** Small enough that runs continue as new by length within the test's traffic (the schema's minimum is 50). */
const MAX_RUN_EVENTS = 60;
/** One activity (scheduled/started/completed, workflow task scheduled/started/completed) and a signal or two. */
const RUN_EVENTS_SLACK = 10;
/** WORKER_STICKY_TIMEOUT_MS's default, which every life here runs with. */
const STICKY_TIMEOUT_MS = 10_000;
const seed = Number(process.env['TOLLGATE_FLEET_SEED'] ?? randomInt(1, 2 ** 31));
let fleet: FleetHarness;

/** Runs `tick` until stopped, pausing `pauseMs` between ticks. */
function repeatUntilStopped(tick: (index: number) => Promise<void>, pauseMs: number): { stop: () => Promise<void> } {
  let isRunning = true;
  const loop = (async () => {
    for (let index = 0; isRunning; index += 1) {
      await tick(index);
      await sleep(pauseMs);
    }
  })();
  return {
    stop: async () => {
      isRunning = false;
      await loop;
    },
  };
}

beforeAll(async () => {
  console.log(`[metering-fleet] seed ${seed} (replay with TOLLGATE_FLEET_SEED=${seed})`);
  fleet = await startFleetHarness({
    name: 'metering-fleet',
    shards: SHARDS,
    random: seededRandom(seed),
    settings: {
      METER_BATCH_SIZE: '50',
      METER_HEARTBEAT_TIMEOUT_MS: '3000',
      METER_IDLE_DELAY_MS: '250',
      METER_IDLE_WAIT_MS: '5000',
      METER_MAX_RUN_EVENTS: String(MAX_RUN_EVENTS),
      METER_MAX_TRANSACT_ITEMS: '50',
    },
  });
}, 180_000);

afterAll(() => fleet.close());

describe('the metering fleet at 256 shards', () => {
  it('keeps every run short under steady traffic, and a cold start of the worker entry point drains a backlog without a workflow task timeout', async () => {
    // given 256 pumps pumping steady traffic (a worker that ensured them at its start)
    const warm = fleet.startMeterWorker();
    await warm.ready;
    const traffic = repeatUntilStopped((tick) => fleet.appendTraffic({ shards: 8, perShard: 2, label: `steady${tick}` }), 100);
    onTestFinished(() => traffic.stop());
    await waitFor('every pump to run', async () => (await fleet.client.workflow.count(`WorkflowType = 'meterPump'`)).count >= PUMPS, {
      intervalMs: 500,
    });
    // a second worker start ensures the fleet again: it must write nothing into the running pumps
    const second = fleet.startMeterWorker();
    // a failure mid-test must not leave these lives pumping into the next test
    onTestFinished(() => void [warm, second].map((life) => life.child.kill('SIGKILL')));
    await second.ready;
    await waitFor(
      'some runs to continue as new by length',
      async () => {
        const count = await fleet.client.workflow.count(`WorkflowType = 'meterPump' AND ExecutionStatus = 'ContinuedAsNew'`);
        return count.count >= PUMPS;
      },
      { timeoutMs: 300_000, intervalMs: 1_000 },
    );
    await traffic.stop();
    const steady = await pumpRunsSince(fleet.client, 0);
    const largest = Math.max(...steady.map((run) => run.events));
    console.log(
      `[metering-fleet] steady traffic: ${steady.length} runs, largest ${largest} events (limit ${MAX_RUN_EVENTS}), ` +
        `${fleet.appended.length} events appended`,
    );
    expect(largest).toBeLessThanOrEqual(MAX_RUN_EVENTS + RUN_EVENTS_SLACK);
    expect(steady.reduce((sum, run) => sum + run.signals, 0)).toBe(0);

    // when both workers stop, a backlog builds up while no worker runs (longer than the sticky timeout: the tasks left
    // on the stopped workers' sticky queues are handed to the shared queue meanwhile), and the real worker entry
    // point starts cold: it replays all 16 pumps (256 shards) at once
    for (const life of [warm, second]) {
      life.child.kill('SIGTERM');
      expect(await life.exited).toBe(0);
    }
    await fleet.appendTraffic({ shards: SHARDS, perShard: 20, label: 'backlog' });
    await sleep(STICKY_TIMEOUT_MS + 5_000);
    const backlog = (await fleet.lag()).unacknowledged;
    const metricsPort = await freePort();
    const coldStartMs = Date.now();
    const { child, exited, output } = startEntryPoint({
      ...fleet.workerEnv(),
      WORKER_METRICS_PORT: String(metricsPort),
    });
    onTestFinished(() => void child.kill('SIGKILL'));

    // then the backlog drains, and not one workflow task of any pump timed out since
    await waitFor(
      'the backlog to drain',
      async () => {
        expect(child.exitCode, output()).toBeNull();
        return (await fleet.lag()).unacknowledged === 0;
      },
      { timeoutMs: 180_000, intervalMs: 500 },
    );
    const drainedMs = Date.now() - coldStartMs;
    const cold = await pumpRunsSince(fleet.client, coldStartMs);
    const timeouts = timeoutsSince(cold, coldStartMs);
    console.log(
      `[metering-fleet] cold start: ${backlog} events backlog drained ${drainedMs} ms after the worker process started; ` +
        `runs since ${cold.length}, largest ${Math.max(...cold.map((run) => run.events))} events; workflow task timeouts since ${describeTimeouts(timeouts, coldStartMs)}`,
    );
    // not a single workflow task timed out: none the cold worker took ran past the task timeout (the livelock of issue
    // 19: replays longer than the task timeout, scheduled again, replayed again), and none waited out its sticky queue
    // while it was busy (with one pump per shard a cold start of 256 handed 47 to 79 over beside other test files;
    // 16 pumps of 16 shards hand none over)
    expect(timeouts).toEqual([]);
    await fleet.expectLedgerEqualsAppended();
    // and the worker says it is ready, with nothing waiting and no stall
    const health = await scrape(metricsPort);
    expect(health.readyBody).toEqual({ ready: true });
    expect(health.ready).toBe(200);
    expect(gauge(health.metrics, 'tollgate_meter_unacknowledged_entries')).toBe(0);
    expect(gauge(health.metrics, 'tollgate_meter_fleet_stalled')).toBe(0);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 420_000);

  it('drains a flood of usage entries on every stream: the lag rises, then falls to 0, the ledger exact, nothing dead-lettered', async () => {
    // given the fleet pumping (a worker that ensured it at its start)
    const life = fleet.startMeterWorker();
    await life.ready;
    const before = fleet.appended.length;
    // when 10,240 requests' usage entries (~17,000) land on the 256 streams at once, while the lag is sampled
    let peak = 0;
    let isFlooding = true;
    const sampling = (async () => {
      while (isFlooding) {
        peak = Math.max(peak, (await fleet.lag()).unacknowledged);
        await sleep(200);
      }
    })();
    await fleet.appendTraffic({ shards: SHARDS, perShard: 40, label: 'flood' });
    peak = Math.max(peak, (await fleet.lag()).unacknowledged);
    isFlooding = false;
    await sampling;
    const floodStartedMs = Date.now();
    // then the lag rose, and falls back to 0 (each pump batch bounded by METER_BATCH_SIZE entries)
    let left = peak;
    await waitFor(`the flood to drain (${peak} at the peak)`, async () => (left = (await fleet.lag()).unacknowledged) === 0, {
      timeoutMs: 480_000,
      intervalMs: 500,
    }).catch((error: unknown) => {
      throw new Error(`${left} entries still unacknowledged`, { cause: error });
    });
    console.log(
      `[metering-fleet] flood: ${fleet.appended.length - before} entries, lag peaked at ${peak}, 0 ${Date.now() - floodStartedMs} ms after the last append`,
    );
    expect(peak).toBeGreaterThan(0);
    // and every entry is in the ledger exactly once, none dead-lettered
    expect((await fleet.lag()).deadLetters).toBe(0);
    await fleet.expectLedgerEqualsAppended();
    life.child.kill('SIGTERM');
    expect(await life.exited).toBe(0);
  }, 600_000);
});
