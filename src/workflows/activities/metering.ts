/**
 * Metering activities: one batch of one shard's usage stream into the ledger.
 * Idempotent: a retried or duplicated batch re-posts entries the ledger
 * already holds (nothing moves) and acknowledges what it already acknowledged.
 * Heartbeats at every stage, so a crashed worker is noticed after the
 * heartbeat timeout rather than the whole start-to-close timeout.
 *
 * An idle stream is waited for here (`idleWaitMs`): the activity polls the
 * stream every `idlePollMs`, heartbeating, and returns as soon as a batch
 * finds entries, so an idle pump writes one activity per wait into its
 * workflow history instead of a durable timer per poll.
 */
import { Context, heartbeat } from '@temporalio/activity';
import { parseShard, type PumpBatchResult, type PumpStage, type UsagePump } from '../../metering/index.js';
import { asActivity } from './errors.js';

export interface PumpUsageBatchInput {
  shard: number;
  /** Reclaim scan position (`0-0` to start over). */
  claimCursor: string;
  /** Wait up to this long (ms) for entries when the stream is idle; absent: return the first (possibly empty) batch. */
  idleWaitMs?: number;
  /** Pause between two polls of an idle stream, ms. @default 1000 */
  idlePollMs?: number;
}

export type PumpUsageBatchResult = PumpBatchResult & {
  /** The activity waited for entries (up to `idleWaitMs`) before returning an empty batch. */
  hasWaited?: boolean;
};

export interface MeteringActivityDeps {
  pump: UsagePump;
  /** Called at each stage of a batch, after the heartbeat (tests inject crashes here). */
  onStage?: (stage: PumpStage, shard: number) => void;
  /** Called after each batch, done or failed (metrics). */
  onBatch?: (outcome: { result: PumpBatchResult } | { error: unknown }) => void;
}

const DEFAULT_IDLE_POLL_MS = 1_000;

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

/** Activities of the `meter/<shard>` workflows. */
export function createMeteringActivities(deps: MeteringActivityDeps) {
  const pumpOnce = (shard: ShardId, claimCursor: string): Promise<PumpBatchResult> => {
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
     * Pumps one batch of the shard's usage stream; on an idle stream, polls it
     * until entries come, `idleWaitMs` passed (at most half the start-to-close
     * timeout) or the worker shuts down. @returns what it did (read 0: idle throughout)
     */
    async pumpUsageBatch(input: PumpUsageBatchInput): Promise<PumpUsageBatchResult> {
      return asActivity(async () => {
        const shard = parseShard(input.shard);
        heartbeat('start');
        let result = await pumpOnce(shard, input.claimCursor);
        if (result.read > 0 || input.idleWaitMs === undefined) return result;
        const context = Context.current();
        const startedMs = Date.now();
        const waitMs = Math.min(input.idleWaitMs, Math.floor(context.info.startToCloseTimeoutMs / 2));
        const pollMs = input.idlePollMs ?? DEFAULT_IDLE_POLL_MS;
        while (result.read === 0 && Date.now() - startedMs + pollMs <= waitMs && !context.cancellationSignal.aborted) {
          await pause(pollMs, context.cancellationSignal);
          if (context.cancellationSignal.aborted) break;
          heartbeat('idle');
          result = await pumpOnce(shard, result.claimCursor);
        }
        return result.read > 0 ? result : { ...result, hasWaited: true };
      });
    },
  };
}

export type MeteringActivities = ReturnType<typeof createMeteringActivities>;
