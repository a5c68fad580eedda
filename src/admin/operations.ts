/**
 * `operations` (issue 18, the operator dashboard): what an operator watches besides tenants and plans, read from
 * the instance that answers: the pump's lag over every shard, the last full metering audit, this instance's
 * decider breaker and degraded-mode spool, and its decisions by kind and deciding limit since it started (a client
 * polling it charts the deltas: denials and deferrals by limit over time). Reads only.
 */
import type { OperationsView } from './ports.js';
import { run } from './support.js';

export const OPERATIONS_TYPE_DEFS = /* GraphQL */ `
  "The pump's backlog over every shard: usage entries admitted but not yet in the ledger."
  type PumpLag {
    unacknowledged: Float!
    "Age of the oldest entry not yet in the ledger, seconds (0: none)."
    lagSeconds: Float!
    deadLetters: Float!
    streams: Int!
  }
  "The last full metering audit (ledger vs admitted, every tenant period)."
  type AuditRun {
    finishedAt: String!
    audited: Float!
    drifting: Float!
    absoluteDrift: Float!
    unsettled: Float!
  }
  "Decisions of the answering instance since it started, by kind (allowed, denied, deferred, degraded-open, ...) and deciding limit."
  type DecisionCount {
    kind: String!
    limit: String!
    count: Float!
  }
  type Operations {
    "When this was read (the answering instance's clock)."
    at: String!
    pump: PumpLag!
    "Null before the first audit has run."
    audit: AuditRun
    "The answering instance's decider breaker: closed (Redis answers), open (degraded mode), half-open."
    breaker: String!
    "Degraded-mode decisions spooled on the answering instance, waiting to be replayed."
    spooledEntries: Float!
    "Age of the oldest spooled entry, seconds (0: none)."
    spooledOldestAgeSeconds: Float!
    decisions: [DecisionCount!]!
  }
  extend type Query {
    "Pump lag, last audit, breaker and degraded-mode spool, decisions by limit (the answering instance)."
    operations: Operations!
  }
`;

const iso = (ms: number): string => new Date(ms).toISOString();

/** The resolver of `operations`, over a reader the API process provides (absent: the field answers NOT_AVAILABLE). */
export function operationsResolvers(
  read: (() => Promise<OperationsView>) | undefined,
  nowMs: () => number,
): { Query: Record<string, () => Promise<unknown>> } {
  return {
    Query: {
      operations: () =>
        run(async () => {
          if (read === undefined) throw new Error('operations are not wired in this process');
          const view = await read();
          return {
            at: iso(nowMs()),
            pump: view.pump,
            audit: view.audit === null ? null : { ...view.audit, finishedAt: iso(view.audit.finishedAtMs) },
            breaker: view.breaker,
            spooledEntries: view.spool.entries,
            spooledOldestAgeSeconds: view.spool.oldestAgeSeconds,
            decisions: view.decisions,
          };
        }),
    },
  };
}
