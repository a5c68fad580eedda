/**
 * Metering activities: the usage pump's batches, from a shard's usage stream
 * into the ledger. Idempotent: a retried or duplicated batch re-posts entries
 * the ledger already holds (nothing moves) and acknowledges what it already
 * acknowledged. Heartbeats at every stage, so a crashed worker is noticed
 * after the heartbeat timeout rather than the whole start-to-close timeout.
 *
 * One activity pumps for a span (half to all of `idleWaitMs`, drawn per
 * activity so that pumps started together drift apart): batch after batch
 * while a stream has entries, then polling it with a pause that grows from
 * 50 ms to `idlePollMs`, heartbeating throughout. `pumpUsageShards` does so
 * for every shard of a `meter/<first>-<last>` pump side by side, so a pump
 * adds one activity (~6 events) per span to its workflow history whatever the
 * traffic and however many shards it owns, and a batch waits on no Temporal
 * round trip (issue 19). Each batch acknowledges only what the ledger holds,
 * so a crash anywhere in a span leaves at most the batches in progress
 * pending, reclaimed by the retry.
 */
import { setMaxListeners } from 'node:events';
import { Context, heartbeat } from '@temporalio/activity';
import { parseShard, type PumpBatchResult, type PumpStage, type UsagePump } from '../../metering/index.js';
import { asActivity } from './errors.js';

export interface PumpUsageBatchInput {
  shard: number;
  /** Reclaim scan position (`0-0` to start over). */
  claimCursor: string;
  /** Pump batch after batch for this long (ms), waiting on an idle stream; absent: return the first (possibly empty) batch. */
  idleWaitMs?: number;
  /** Longest pause between two polls of an idle stream, ms (the pause grows to it from 50 ms). @default 1000 */
  idlePollMs?: number;
}

export type PumpUsageBatchResult = PumpBatchResult & {
  /** The activity pumped (and waited) for its span, so the workflow need not pause before the next one. */
  hasWaited?: boolean;
};

export interface MeteringActivityDeps {
  pump: UsagePump;
  /** Called at each stage of a batch, after the heartbeat (tests inject crashes here). */
  onStage?: (stage: PumpStage, shard: number) => void;
  /** Most batches this process runs at once (the others wait, heartbeating). @default no bound */
  batchesInFlight?: number;
  /** Called after each batch, done or failed (metrics). */
  onBatch?: (outcome: { result: PumpBatchResult } | { error: unknown }) => void;
}

const DEFAULT_IDLE_POLL_MS = 1_000;
/** A span is drawn between (1 − SPAN_JITTER) and 1 times `idleWaitMs`. */
const SPAN_JITTER = 0.5;
/** First pause after a batch that read entries was followed by an empty one; doubled after each empty poll up to `idlePollMs`. */
const FIRST_IDLE_PAUSE_MS = 50;

type ShardId = ReturnType<typeof parseShard>;

/** Resolves after `ms`, or at once when `signal` aborts. */
async function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return;
  await new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}

/**
 * At most `size` batches of one worker process at once, first come first
 * served: a cold start's 256 pumps with a backlog must not hold the event loop
 * so long that the worker stops polling its sticky queue in time.
 */
class BatchPermits {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(size: number) {
    this.free = size;
  }

  /** Resolves with the permit's release once one is free (the activity's beat heartbeats meanwhile). */
  async take(): Promise<() => void> {
    if (this.free > 0) {
      this.free -= 1;
      return () => this.give();
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
    return () => this.give();
  }

  private give(): void {
    const next = this.waiting.shift();
    if (next === undefined) this.free += 1;
    else next();
  }
}

/** Heartbeats sent by one activity at most this often, ms, however many of its shards report a stage. */
const BEAT_MS = 1_000;

/**
 * The running activity's heartbeat: at most one per BEAT_MS, whatever calls
 * it (every stage of every shard's batch), and one per BEAT_MS by a timer
 * while batches wait for a permit or for Redis. A cold start runs thousands
 * of shard loops in one process; a heartbeat per stage per shard, and a timer
 * per waiting batch, cost the event loop the worker polls with.
 */
function startBeat(): { beat: (stage: string) => void; stop: () => void } {
  let lastMs = 0;
  const beat = (stage: string): void => {
    const nowMs = Date.now();
    if (nowMs - lastMs < BEAT_MS) return;
    lastMs = nowMs;
    heartbeat(stage);
  };
  beat('start');
  const timer = setInterval(() => beat('alive'), BEAT_MS);
  return { beat, stop: () => clearInterval(timer) };
}

/** Two batches' results as one: counts summed, the later cursor, the highest entry id. */
function combine(total: PumpBatchResult, next: PumpBatchResult): PumpBatchResult {
  return {
    claimCursor: next.claimCursor,
    read: total.read + next.read,
    reclaimed: total.reclaimed + next.reclaimed,
    posted: total.posted + next.posted,
    duplicates: total.duplicates + next.duplicates,
    deadLettered: total.deadLettered + next.deadLettered,
    acked: total.acked + next.acked,
    trimmed: total.trimmed + next.trimmed,
    warnings: total.warnings + next.warnings,
    // stream ids of one stream only grow, so the later batch's highest id is the highest, when it read one
    lastEntryId: next.lastEntryId === '' ? total.lastEntryId : next.lastEntryId,
  };
}

/** When a span that starts now ends: between half and all of `idleWaitMs` (at most half the start-to-close timeout). */
function spanEndMs(idleWaitMs: number): number {
  const longestMs = Math.min(idleWaitMs, Math.floor(Context.current().info.startToCloseTimeoutMs / 2));
  // drawn per activity: pumps started together (a cold start) do not stay in step, so their workflow tasks do not all
  // reach the worker in the same second
  return Date.now() + longestMs * (1 - SPAN_JITTER * Math.random());
}

/** What a pump workflow keeps of a batch (or of a span of batches) of one shard. */
export type PumpBatchCounts = Pick<
  PumpBatchResult,
  'claimCursor' | 'lastEntryId' | 'read' | 'posted' | 'duplicates' | 'deadLettered' | 'trimmed'
>;

export interface PumpUsageShardsInput {
  /** The pump's shards, each with its reclaim scan position (`0-0` to start over). */
  shards: { shard: number; claimCursor: string }[];
  /** Pump every shard batch after batch for this long (ms), waiting on idle streams. */
  idleWaitMs: number;
  /** Longest pause between two polls of an idle stream, ms. @default 1000 */
  idlePollMs?: number;
}

export interface PumpUsageShardsResult {
  /** What each shard's batches did together, in the input's order. */
  shards: (PumpBatchCounts & { shard: number })[];
}

const counts = (result: PumpBatchResult): PumpBatchCounts => ({
  claimCursor: result.claimCursor,
  lastEntryId: result.lastEntryId,
  read: result.read,
  posted: result.posted,
  duplicates: result.duplicates,
  deadLettered: result.deadLettered,
  trimmed: result.trimmed,
});

/** Activities of the pump workflows (`meter/<first>-<last>`, and `meter/<shard>` of older workers). */
export function createMeteringActivities(deps: MeteringActivityDeps) {
  const permits = deps.batchesInFlight === undefined ? undefined : new BatchPermits(deps.batchesInFlight);
  const pumpBatch = async (shard: ShardId, claimCursor: string, beat: (stage: string) => void): Promise<PumpBatchResult> => {
    const release = await permits?.take();
    try {
      const batch = deps.pump.pumpBatch({
        shard,
        claimCursor,
        onProgress: () => beat('ledger'),
        onStage: (stage) => {
          beat(stage);
          deps.onStage?.(stage, shard);
        },
      });
      batch.then(
        (result) => deps.onBatch?.({ result }),
        (error: unknown) => deps.onBatch?.({ error }),
      );
      return await batch;
    } finally {
      release?.();
    }
  };
  /**
   * Pumps one shard from `first` (its first batch's result) until `endMs`:
   * batch after batch while the stream has entries, then polling it with a
   * pause growing from 50 ms to `longestPauseMs`, until the span ends or the
   * activity is cancelled (worker shutdown).
   */
  const pumpSpan = async (
    shard: ShardId,
    first: PumpBatchResult,
    span: { endMs: number; longestPauseMs: number; beat: (stage: string) => void },
  ): Promise<PumpBatchResult> => {
    const { endMs, longestPauseMs, beat } = span;
    const signal = Context.current().cancellationSignal;
    let total = first;
    // a stream that just had entries is polled again at once, then after 50, 100, 200… ms; an idle one every longest pause
    let pauseMs = total.read > 0 ? 0 : longestPauseMs;
    while (Date.now() + pauseMs <= endMs && !signal.aborted) {
      if (pauseMs > 0) {
        await pause(pauseMs, signal);
        if (signal.aborted) break;
        beat('idle');
      }
      const batch = await pumpBatch(shard, total.claimCursor, beat);
      total = combine(total, batch);
      pauseMs = batch.read > 0 ? 0 : Math.min(pauseMs === 0 ? FIRST_IDLE_PAUSE_MS : pauseMs * 2, longestPauseMs);
    }
    return total;
  };
  return {
    /**
     * The activity of `meter/<shard>` (one shard per workflow, older workers):
     * one batch, or, with `idleWaitMs`, batch after batch for a span (see
     * `pumpSpan`). @returns what its batches did together (read 0: idle throughout)
     */
    async pumpUsageBatch(input: PumpUsageBatchInput): Promise<PumpUsageBatchResult> {
      return asActivity(async () => {
        const shard = parseShard(input.shard);
        const { beat, stop } = startBeat();
        try {
          const endMs = input.idleWaitMs === undefined ? undefined : spanEndMs(input.idleWaitMs);
          const first = await pumpBatch(shard, input.claimCursor, beat);
          if (endMs === undefined) return first;
          const longestPauseMs = input.idlePollMs ?? DEFAULT_IDLE_POLL_MS;
          return { ...(await pumpSpan(shard, first, { endMs, longestPauseMs, beat })), hasWaited: true };
        } finally {
          stop();
        }
      });
    },
    /**
     * The activity of `meter/<first>-<last>`: pumps each of the pump's shards
     * for one span, the shards side by side (batches of this process bounded
     * by `batchesInFlight`), and returns once every shard's span has ended.
     * A crash anywhere leaves at most each shard's batch in progress pending,
     * reclaimed by the retry from the cursors it was given.
     */
    async pumpUsageShards(input: PumpUsageShardsInput): Promise<PumpUsageShardsResult> {
      return asActivity(async () => {
        const shards = input.shards.map(({ shard, claimCursor }) => ({ shard: parseShard(shard), claimCursor }));
        // every shard's idle pause listens to the activity's cancellation at once (Node warns past 10 listeners)
        setMaxListeners(shards.length + 10, Context.current().cancellationSignal);
        const { beat, stop } = startBeat();
        try {
          const span = { endMs: spanEndMs(input.idleWaitMs), longestPauseMs: input.idlePollMs ?? DEFAULT_IDLE_POLL_MS, beat };
          const results = await Promise.all(
            shards.map(async ({ shard, claimCursor }) => pumpSpan(shard, await pumpBatch(shard, claimCursor, beat), span)),
          );
          return { shards: results.map((result, index) => ({ shard: input.shards[index]?.shard ?? 0, ...counts(result) })) };
        } finally {
          stop();
        }
      });
    },
  };
}

export type MeteringActivities = ReturnType<typeof createMeteringActivities>;
