/**
 * Prometheus metrics of one API instance, in a registry of its own (never
 * prom-client's global default, so two apps in one process do not collide).
 * Label values come from code and plan ids, never from client input.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export type BreakerStateName = 'closed' | 'half-open' | 'open';

const BREAKER_VALUE: Record<BreakerStateName, number> = { closed: 0, 'half-open': 1, open: 2 };

export class TollgateMetrics {
  readonly registry = new Registry();
  /** Decisions by kind (allowed, warned, deferred, denied, degraded-open, degraded-local, degraded-closed) and limit. */
  readonly decisions: Counter<'kind' | 'limit'>;
  /** Time to a decision, seconds. */
  readonly deciderLatency: Histogram;
  /** Requests refused before the decider (identity, guards, pricing), by code. */
  readonly refusals: Counter<'code'>;
  /** Cost units: requested (reserved), actual, refunded, overrun. */
  readonly costUnits: Counter<'kind'>;
  /** Settlements that failed (refund or overrun not applied). */
  readonly settleFailures: Counter;
  readonly idempotentReplays: Counter<'outcome'>;

  constructor(options: { breakerState?: () => BreakerStateName } = {}) {
    const registers = [this.registry];
    this.decisions = new Counter({ name: 'tollgate_decisions_total', help: 'Limit decisions by kind and deciding limit', labelNames: ['kind', 'limit'], registers });
    this.deciderLatency = new Histogram({
      name: 'tollgate_decider_latency_seconds',
      help: 'Time from asking the decider to its decision',
      buckets: [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.refusals = new Counter({ name: 'tollgate_refusals_total', help: 'Requests refused before a decision, by error code', labelNames: ['code'], registers });
    this.costUnits = new Counter({ name: 'tollgate_cost_units_total', help: 'Cost units requested, actual, refunded and overrun', labelNames: ['kind'], registers });
    this.settleFailures = new Counter({ name: 'tollgate_settle_failures_total', help: 'Settlements that could not be applied', registers });
    this.idempotentReplays = new Counter({
      name: 'tollgate_idempotent_replays_total',
      help: 'Idempotency-Key retries of an admitted request: first response sent again (replayed) or not available (409)',
      labelNames: ['outcome'],
      registers,
    });
    const breakerState = options.breakerState;
    new Gauge({
      name: 'tollgate_decider_breaker_state',
      help: 'Decider circuit breaker: 0 closed, 1 half-open, 2 open',
      registers,
      collect() {
        this.set(breakerState === undefined ? 0 : BREAKER_VALUE[breakerState()]);
      },
    });
  }
}
