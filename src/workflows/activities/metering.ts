/**
 * Metering activities: one batch of one shard's usage stream into the ledger.
 * Idempotent: a retried or duplicated batch re-posts entries the ledger
 * already holds (nothing moves) and acknowledges what it already acknowledged.
 * Heartbeats at every stage, so a crashed worker is noticed after the
 * heartbeat timeout rather than the whole start-to-close timeout.
 *
 * One activity pumps for a span (`idleWaitMs`): batch after batch while the
 * stream has entries, then polling it with a pause that grows from 50 ms to
 * `idlePollMs` (an idle stream: every `idlePollMs`), heartbeating throughout. So a pump adds one activity
 * (~6 events) per span to its workflow history whatever the traffic, and a
 * batch waits on no Temporal round trip (issue 19). Each batch acknowledges
 * only what the ledger holds, so a crash anywhere in a span leaves at most the
 * batch in progress pending, reclaimed by the retry.
 */
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

  /** Resolves with the permit's release once one is free; calls `whileWaiting` every second until then. */
  async take(whileWaiting: () => void): Promise<() => void> {
    if (this.free > 0) {
      this.free -= 1;
      return () => this.give();
    }
    const timer = setInterval(whileWaiting, 1_000);
    try {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } finally {
      clearInterval(timer);
    }
    return () => this.give();
  }

  private give(): void {
    const next = this.waiting.shift();
    if (next === undefined) this.free += 1;
    else next();
  }
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

/** Activities of the `meter/<shard>` workflows. */
export function createMeteringActivities(deps: MeteringActivityDeps) {
  const permits = deps.batchesInFlight === undefined ? undefined : new BatchPermits(deps.batchesInFlight);
  const pumpOnce = async (shard: ShardId, claimCursor: string): Promise<PumpBatchResult> => {
    const release = await permits?.take(() => heartbeat('queued'));
    try {
      return await pumpBatch(shard, claimCursor);
    } finally {
      release?.();
    }
  };
  const pumpBatch = (shard: ShardId, claimCursor: string): Promise<PumpBatchResult> => {
    const batch = deps.pump.pumpBatch({
      shard,
      claimCursor,
      onProgress: () => heartbeat('ledger'),
      onStage: (stage) => {
        heartbeat(stage);
        deps.onStage?.(stage, shard);
      },
    });
    batch.then(
      (result) => deps.onBatch?.({ result }),
      (error: unknown) => deps.onBatch?.({ error }),
    );
    return batch;
  };
  return {
    /**
     * Pumps the shard's usage stream: one batch, or, with `idleWaitMs`, batch
     * after batch for that span (at most half the start-to-close timeout),
     * polling an idle stream with a growing pause, until the span ends or the
     * worker shuts down. @returns what its batches did together (read 0: idle throughout)
     */
    async pumpUsageBatch(input: PumpUsageBatchInput): Promise<PumpUsageBatchResult> {
      return asActivity(async () => {
        const shard = parseShard(input.shard);
        heartbeat('start');
        let total = await pumpOnce(shard, input.claimCursor);
        if (input.idleWaitMs === undefined) return total;
        const context = Context.current();
        const startedMs = Date.now();
        const spanMs = Math.min(input.idleWaitMs, Math.floor(context.info.startToCloseTimeoutMs / 2));
        const longestPauseMs = input.idlePollMs ?? DEFAULT_IDLE_POLL_MS;
        // a stream that just had entries is polled again at once, then after 50, 100, 200… ms; an idle one every longest pause
        let pauseMs = total.read > 0 ? 0 : longestPauseMs;
        while (Date.now() - startedMs + pauseMs <= spanMs && !context.cancellationSignal.aborted) {
          if (pauseMs > 0) {
            await pause(pauseMs, context.cancellationSignal);
            if (context.cancellationSignal.aborted) break;
            heartbeat('idle');
          }
          const batch = await pumpOnce(shard, total.claimCursor);
          total = combine(total, batch);
          pauseMs = batch.read > 0 ? 0 : Math.min(pauseMs === 0 ? FIRST_IDLE_PAUSE_MS : pauseMs * 2, longestPauseMs);
        }
        return { ...total, hasWaited: true };
      });
    },
  };
}

export type MeteringActivities = ReturnType<typeof createMeteringActivities>;
