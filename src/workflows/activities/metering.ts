/**
 * Metering activities: one batch of one shard's usage stream into the ledger.
 * Idempotent: a retried or duplicated batch re-posts entries the ledger
 * already holds (nothing moves) and acknowledges what it already acknowledged.
 * Heartbeats at every stage, so a crashed worker is noticed after the
 * heartbeat timeout rather than the whole start-to-close timeout.
 */
import { heartbeat } from '@temporalio/activity';
import { parseShard, type PumpBatchResult, type PumpStage, type UsagePump } from '../../metering/index.js';
import { asActivity } from './errors.js';

export interface PumpUsageBatchInput {
  shard: number;
  /** Reclaim scan position (`0-0` to start over). */
  claimCursor: string;
}

export type PumpUsageBatchResult = PumpBatchResult;

export interface MeteringActivityDeps {
  pump: UsagePump;
  /** Called at each stage of a batch, after the heartbeat (tests inject crashes here). */
  onStage?: (stage: PumpStage, shard: number) => void;
  /** Called after each batch, done or failed (metrics). */
  onBatch?: (outcome: { result: PumpBatchResult } | { error: unknown }) => void;
}

/** Activities of the `meter/<shard>` workflows. */
export function createMeteringActivities(deps: MeteringActivityDeps) {
  return {
    /** Pumps one batch of the shard's usage stream; returns what it did (read 0: the stream was idle). */
    async pumpUsageBatch(input: PumpUsageBatchInput): Promise<PumpUsageBatchResult> {
      return asActivity(() => {
        const shard = parseShard(input.shard);
        heartbeat('start');
        const batch = deps.pump.pumpBatch({
          shard,
          claimCursor: input.claimCursor,
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
      });
    },
  };
}

export type MeteringActivities = ReturnType<typeof createMeteringActivities>;
