/**
 * The operator dashboard's fleet-wide fields (issue 18): `topConsumers` (tenants ranked by the units the decider
 * admitted, in their current billing period or the last 24 hours) and `operations { fleet }` (denials, deferrals and
 * degraded decisions by limit per minute, and degraded-mode periods, summed over every API process). Both read what
 * the API processes flush to Redis each second (src/graphql/usage/rankings.ts and fleet.ts). Reads only.
 */
import { run, type AdminDeps } from './support.js';

export const INSIGHTS_TYPE_DEFS = /* GraphQL */ `
  enum RankingWindow {
    "Each tenant's current billing period."
    PERIOD
    "This UTC hour and the 23 before it."
    LAST_24_HOURS
  }
  type Consumer {
    tenant: String!
    "Units admitted (costs decided, net of settlement refunds), as the decider's admitted counter counts them."
    units: Float!
    "units / totalUnits (0..1)."
    share: Float!
  }
  type TopConsumers {
    window: RankingWindow!
    from: String!
    to: String!
    "Units admitted to every tenant in the window."
    totalUnits: Float!
    "Tenants with units in the window."
    tenants: Int!
    items: [Consumer!]!
  }
  "Decisions of one kind (denied, deferred, degraded-open, degraded-closed, degraded-local) and limit in one UTC minute, every API process."
  type FleetMinute {
    minute: String!
    kind: String!
    limit: String!
    count: Float!
  }
  "A period an API instance's decider breaker was not closed (degraded mode)."
  type DegradedPeriod {
    instance: String!
    from: String!
    "Null: still degraded."
    to: String
    "The breaker states seen (open, half-open)."
    states: [String!]!
  }
  type Fleet {
    from: String!
    to: String!
    minutes: [FleetMinute!]!
    degraded: [DegradedPeriod!]!
  }
  extend type Operations {
    "Every API process's refusals per minute and degraded periods over the last 'minutes' (1..1440), flushed each second."
    fleet(minutes: Int = 60): Fleet!
  }
  extend type Query {
    "The 'first' (1..100) tenants with the most units admitted in the window, with their share of the total."
    topConsumers(window: RankingWindow = PERIOD, first: Int = 10): TopConsumers!
  }
`;

const iso = (ms: number): string => new Date(ms).toISOString();

export function insightsResolvers(deps: AdminDeps): Record<string, Record<string, unknown>> {
  return {
    Query: {
      topConsumers: (_parent: unknown, args: { window: 'PERIOD' | 'LAST_24_HOURS'; first: number }) =>
        run(async () => {
          if (deps.topConsumers === undefined) throw new Error('top consumers are not wired in this process');
          const view = await deps.topConsumers({ window: args.window, first: args.first, nowMs: deps.clock.nowMs() });
          return {
            window: view.window,
            from: iso(view.fromMs),
            to: iso(view.toMs),
            totalUnits: view.totalUnits,
            tenants: view.tenants,
            items: view.items.map((item) => ({ ...item, share: view.totalUnits > 0 ? item.units / view.totalUnits : 0 })),
          };
        }),
    },
    Operations: {
      fleet: (_parent: unknown, args: { minutes: number }) =>
        run(async () => {
          if (deps.fleet === undefined) throw new Error('fleet figures are not wired in this process');
          const view = await deps.fleet({ minutes: args.minutes, nowMs: deps.clock.nowMs() });
          return {
            from: iso(view.fromMs),
            to: iso(view.toMs),
            minutes: view.minutes.map((minute) => ({ ...minute, minute: iso(minute.minuteStartMs) })),
            degraded: view.degraded.map((period) => ({
              ...period,
              from: iso(period.fromMs),
              to: period.toMs === null ? null : iso(period.toMs),
            })),
          };
        }),
    },
  };
}
