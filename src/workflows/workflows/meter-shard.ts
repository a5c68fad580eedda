/**
 * meterShard (`meter/<shard>`): the usage pump of one logical shard, as pumps
 * ran before `meterPump` (meter-pump.ts) took over groups of shards; kept so
 * that runs started by an older worker replay and keep pumping until the
 * fleet's ensure retires them. It loops
 * one activity, `pumpUsageBatch`, which moves a batch from the shard's usage
 * stream into the ledger exactly once. It keeps only a cursor and counters and
 * never completes on its own. New settings arrive by `meterSettingsSignal`
 * (sent only when a start finds different ones) and apply from the next run,
 * which begins after the batch in progress.
 *
 * Bounded runs (patch `meter-bounded-runs`, issue 19): a cold worker replays
 * every pump's current run at once, so a run stays short whatever the traffic
 * or the number of worker restarts. One activity pumps for up to `idleWaitMs`
 * (batch after batch, polling an idle stream, heartbeating), not a batch per
 * activity and a durable timer per idle poll: a pump adds one activity (~6
 * events) per span, busy or idle. A run
 * continues as new at `maxRunEvents` events or `maxRunBytes` bytes of history,
 * after `iterationsPerRun` batches, or when Temporal suggests it. Runs started
 * before the patch keep their timers and limits until they continue as new.
 */
import { continueAsNew, defineQuery, defineSignal, patched, proxyActivities, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import type { MeteringActivities, PumpBatchCounts } from '../activities/index.js';

/** Timing and sizing of the pump; from configuration (tests use small values). */
export interface MeterSettings {
  /** Wait after a batch that found nothing, ms. */
  idleDelayMs: number;
  /** Batches per run before continue-as-new. */
  iterationsPerRun: number;
  /** Start-to-close timeout of one batch, ms. */
  activityTimeoutMs: number;
  /** Heartbeat timeout of one batch, ms (how fast a crashed worker's batch is retried). */
  heartbeatTimeoutMs: number;
  /** How long one activity waits for entries on an idle stream, polling every `idleDelayMs`. @default 30000 (bounded runs only) */
  idleWaitMs?: number;
  /** History events after which a run continues as new. @default 400 (bounded runs only) */
  maxRunEvents?: number;
  /** History bytes after which a run continues as new. @default 262144 (bounded runs only) */
  maxRunBytes?: number;
}

/** Defaults of the bounded-run settings, for inputs written before they existed. */
export const METER_RUN_DEFAULTS = { idleWaitMs: 30_000, maxRunEvents: 400, maxRunBytes: 256 * 1024 } as const;

/** The change id of bounded runs (long-polling activity, continue-as-new by history length and size). */
export const METER_BOUNDED_RUNS_PATCH = 'meter-bounded-runs';

/** Totals since the pump first started (carried across continue-as-new). */
export interface MeterCounters {
  batches: number;
  read: number;
  posted: number;
  duplicates: number;
  deadLettered: number;
  trimmed: number;
  runs: number;
}

export interface MeterState {
  /** Reclaim scan position handed to the next batch. */
  claimCursor: string;
  /** Highest stream id handled so far ('' before the first). */
  lastEntryId: string;
  counters: MeterCounters;
}

export interface MeterShardInput {
  shard: number;
  settings: MeterSettings;
  /** Carried over by continue-as-new; absent on the first start. */
  state?: MeterState;
}

/** The pump's cursor and counters. */
export const meterStateQuery = defineQuery<MeterState>('meterState');
/** The settings the pump runs with. */
export const meterSettingsQuery = defineQuery<MeterSettings>('meterSettings');
/** Replaces the settings from the next run on (ignored when equal to the current ones). */
export const meterSettingsSignal = defineSignal<[MeterSettings]>('meterSettings');

export function isSameSettings(a: MeterSettings, b: MeterSettings): boolean {
  return (
    a.idleDelayMs === b.idleDelayMs &&
    a.iterationsPerRun === b.iterationsPerRun &&
    a.activityTimeoutMs === b.activityTimeoutMs &&
    a.heartbeatTimeoutMs === b.heartbeatTimeoutMs &&
    a.idleWaitMs === b.idleWaitMs &&
    a.maxRunEvents === b.maxRunEvents &&
    a.maxRunBytes === b.maxRunBytes
  );
}

export const INITIAL_METER_STATE: MeterState = {
  claimCursor: '0-0',
  lastEntryId: '',
  counters: { batches: 0, read: 0, posted: 0, duplicates: 0, deadLettered: 0, trimmed: 0, runs: 0 },
};

/** The pump's state after `batch`. */
export function advance(state: MeterState, batch: PumpBatchCounts): MeterState {
  const counters = state.counters;
  return {
    claimCursor: batch.claimCursor,
    lastEntryId: batch.lastEntryId === '' ? state.lastEntryId : batch.lastEntryId,
    counters: {
      ...counters,
      batches: counters.batches + 1,
      read: counters.read + batch.read,
      posted: counters.posted + batch.posted,
      duplicates: counters.duplicates + batch.duplicates,
      deadLettered: counters.deadLettered + batch.deadLettered,
      trimmed: counters.trimmed + batch.trimmed,
    },
  };
}

/** Whether the run has grown enough to continue as new (bounded runs). */
export function isRunFull(settings: MeterSettings): boolean {
  const info = workflowInfo();
  return (
    info.continueAsNewSuggested ||
    info.historyLength >= (settings.maxRunEvents ?? METER_RUN_DEFAULTS.maxRunEvents) ||
    info.historySize >= (settings.maxRunBytes ?? METER_RUN_DEFAULTS.maxRunBytes)
  );
}

/** Pumps the shard's usage stream into the ledger, forever. */
export async function meterShard(input: MeterShardInput): Promise<never> {
  const { settings } = input;
  const { pumpUsageBatch } = proxyActivities<MeteringActivities>({
    startToCloseTimeout: settings.activityTimeoutMs,
    heartbeatTimeout: settings.heartbeatTimeoutMs,
    retry: {
      initialInterval: '200 milliseconds',
      backoffCoefficient: 2,
      maximumInterval: '10 seconds',
      nonRetryableErrorTypes: ['INVALID_ID', 'INVALID_INPUT', 'INVARIANT_VIOLATED'],
    },
  });
  const previous = input.state ?? INITIAL_METER_STATE;
  let state: MeterState = { ...previous, counters: { ...previous.counters, runs: previous.counters.runs + 1 } };
  let nextSettings: MeterSettings | undefined;
  setHandler(meterStateQuery, () => state);
  setHandler(meterSettingsQuery, () => settings);
  setHandler(meterSettingsSignal, (update) => {
    nextSettings = isSameSettings(update, settings) ? undefined : update;
  });
  const isBounded = patched(METER_BOUNDED_RUNS_PATCH);
  const idleWait = isBounded ? { idleWaitMs: settings.idleWaitMs ?? METER_RUN_DEFAULTS.idleWaitMs, idlePollMs: settings.idleDelayMs } : {};
  for (let iteration = 0; iteration < settings.iterationsPerRun; iteration += 1) {
    const batch = await pumpUsageBatch({ shard: input.shard, claimCursor: state.claimCursor, ...idleWait });
    state = advance(state, batch);
    if (isBounded) {
      if (nextSettings !== undefined || isRunFull(settings)) break;
      // an activity that did not wait (a worker without the long poll, during a rolling deploy) must not spin
      if (batch.read === 0 && batch.hasWaited !== true) await sleep(settings.idleDelayMs);
      continue;
    }
    if (nextSettings !== undefined || workflowInfo().continueAsNewSuggested) break;
    if (batch.read === 0) await sleep(settings.idleDelayMs);
  }
  return continueAsNew<typeof meterShard>({ shard: input.shard, settings: nextSettings ?? settings, state });
}
