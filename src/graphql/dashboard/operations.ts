/** What the admin API's `operations` field reads in the API process (issue 18): all of it already kept for `/metrics`. */
import type { OperationsView } from '../../admin/index.js';
import type { DeciderRedis, ResilientDecider } from '../../decider/index.js';
import { readStreamLag, type DynamoAuditStore } from '../../metering/index.js';
import type { TollgateMetrics } from '../metrics.js';

export function operationsReader(input: {
  redis: DeciderRedis;
  shardCount: number;
  audits: DynamoAuditStore;
  decider: ResilientDecider;
  metrics: TollgateMetrics;
}): () => Promise<OperationsView> {
  const shards = Array.from({ length: input.shardCount }, (_, shard) => shard);
  return async () => {
    const [lag, report, decisions] = await Promise.all([
      readStreamLag(input.redis, { shards }),
      input.audits.latest('all'),
      input.metrics.decisions.get(),
    ]);
    const spool = input.decider.spoolStats();
    return {
      pump: {
        unacknowledged: lag.unacknowledged,
        lagSeconds: lag.oldestUnacknowledgedAgeSeconds,
        deadLetters: lag.deadLetters,
        streams: lag.streams,
      },
      audit: report === undefined ? null : { finishedAtMs: report.finishedAtMs, ...report.summary },
      breaker: input.decider.breaker.current,
      spool: { entries: spool.entries, oldestAgeSeconds: spool.oldestAgeSeconds },
      decisions: decisions.values.map((value) => ({
        kind: String(value.labels['kind']),
        limit: String(value.labels['limit']),
        count: value.value,
      })),
    };
  };
}
