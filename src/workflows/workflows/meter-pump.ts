/**
 * meterPump (`meter/<first>-<last>`): the usage pump of a group of
 * consecutive logical shards (issue 19). It loops one activity,
 * `pumpUsageShards`, which pumps every shard of the group for one span
 * (batch after batch, polling idle streams, heartbeating) and moves what it
 * reads into the ledger exactly once. It keeps a cursor and counters per shard
 * and never completes on its own.
 *
 * Why groups: a cold worker replays every pump at once, and each pump costs
 * a workflow task per span whatever it pumps. With one workflow per shard a
 * fleet of 1,024 shards meant 1,024 replays and ~1,024 tasks per span, which
 * on a small worker outran the workflow task timeout; 16 shards per pump make
 * it 64. A pump adds one activity (~6 history events) per span, busy or idle,
 * and continues as new at `maxRunEvents` events or `maxRunBytes` bytes of
 * history, after `iterationsPerRun` spans, or when Temporal suggests it. New
 * settings arrive by `meterSettingsSignal` (sent only when a start finds
 * different ones) and apply from the next run.
 */
import { continueAsNew, defineQuery, proxyActivities, setHandler, sleep } from '@temporalio/workflow';
import type { MeteringActivities } from '../activities/index.js';
import {
  INITIAL_METER_STATE,
  METER_RUN_DEFAULTS,
  advance,
  isRunFull,
  isSameSettings,
  meterSettingsQuery,
  meterSettingsSignal,
  type MeterSettings,
  type MeterState,
} from './meter-shard.js';

export interface MeterPumpInput {
  /** The pump's shards: consecutive, ascending (its id names the first and the last). */
  shards: number[];
  settings: MeterSettings;
  /** Each shard's cursor and counters, by shard; carried over by continue-as-new, absent on the first start. */
  state?: Record<string, MeterState>;
}

/** Each shard's cursor and counters, by shard. */
export const meterPumpStateQuery = defineQuery<Record<string, MeterState>>('meterPumpState');

/** Pumps the group's usage streams into the ledger, forever. */
export async function meterPump(input: MeterPumpInput): Promise<never> {
  const { settings, shards } = input;
  const { pumpUsageShards } = proxyActivities<MeteringActivities>({
    startToCloseTimeout: settings.activityTimeoutMs,
    heartbeatTimeout: settings.heartbeatTimeoutMs,
    // a pump's activity runs for a whole span, so in a crash loop its attempts pile up: the retry interval stays short
    // (2 s) so that the worker that finally stays up pumps within a heartbeat timeout and 2 s of its start
    retry: {
      initialInterval: '200 milliseconds',
      backoffCoefficient: 2,
      maximumInterval: '2 seconds',
      nonRetryableErrorTypes: ['INVALID_ID', 'INVALID_INPUT', 'INVARIANT_VIOLATED'],
    },
  });
  const state: Record<string, MeterState> = {};
  for (const shard of shards) {
    const previous = input.state?.[String(shard)] ?? INITIAL_METER_STATE;
    state[String(shard)] = { ...previous, counters: { ...previous.counters, runs: previous.counters.runs + 1 } };
  }
  let nextSettings: MeterSettings | undefined;
  setHandler(meterPumpStateQuery, () => state);
  setHandler(meterSettingsQuery, () => settings);
  setHandler(meterSettingsSignal, (update) => {
    nextSettings = isSameSettings(update, settings) ? undefined : update;
  });
  const idleWaitMs = settings.idleWaitMs ?? METER_RUN_DEFAULTS.idleWaitMs;
  for (let iteration = 0; iteration < settings.iterationsPerRun; iteration += 1) {
    const startedAt = Date.now();
    const span = await pumpUsageShards({
      shards: shards.map((shard) => ({ shard, claimCursor: state[String(shard)]?.claimCursor ?? INITIAL_METER_STATE.claimCursor })),
      idleWaitMs,
      idlePollMs: settings.idleDelayMs,
    });
    for (const batch of span.shards) state[String(batch.shard)] = advance(state[String(batch.shard)] ?? INITIAL_METER_STATE, batch);
    if (nextSettings !== undefined || isRunFull(settings)) break;
    // a span that came back at once (a worker shutting down cancels it) must not make the pump spin
    if (Date.now() - startedAt < settings.idleDelayMs) await sleep(settings.idleDelayMs);
  }
  return continueAsNew<typeof meterPump>({ shards, settings: nextSettings ?? settings, state });
}
