/**
 * Prometheus metrics of one API instance, in a registry of its own (never
 * prom-client's global default, so two apps in one process do not collide).
 * Label values come from code and plan ids, never from client input.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DeferralLaneState } from '../jobs/index.js';
import type { AuditReport, StreamLag } from '../metering/index.js';

export type BreakerStateName = 'closed' | 'half-open' | 'open';

const BREAKER_VALUE: Record<BreakerStateName, number> = { closed: 0, 'half-open': 1, open: 2 };

/**
 * A value fetched at most once per `ttlMs` (concurrent scrapes share one fetch);
 * a failed fetch keeps the last value and is counted, so a scrape never fails
 * and never costs more than one fetch per `ttlMs`.
 */
function cachedFetch<T>(fetch: () => Promise<T>, ttlMs: number, onFailure: () => void): () => Promise<T | undefined> {
  let value: T | undefined;
  let fetchedAtMs = -Infinity;
  let inFlight: Promise<T | undefined> | undefined;
  return () => {
    if (performance.now() - fetchedAtMs < ttlMs) return Promise.resolve(value);
    inFlight ??= fetch().then(
      (fresh) => {
        value = fresh;
        fetchedAtMs = performance.now();
        inFlight = undefined;
        return fresh;
      },
      () => {
        onFailure();
        fetchedAtMs = performance.now();
        inFlight = undefined;
        return value;
      },
    );
    return inFlight;
  };
}

/** The degraded-mode spool and backstop as a scrape sees them (`ResilientDecider.spoolStats`, the instance count). */
export interface DegradedModeGauges {
  spool: () => { entries: number; oldestAgeSeconds: number; isWritable: boolean; lost: { entries: number; units: number } };
  /** The instance count the local backstop divides limits by now. */
  instances?: () => number;
  /** Failed script calls since start by cause (`ResilientDecider.callFailures`). */
  callFailures?: () => Readonly<Record<string, number>>;
}

export interface TollgateMetricsOptions {
  breakerState?: () => BreakerStateName;
  degraded?: DegradedModeGauges;
  /** The usage streams' lag (e.g. `readStreamLag` over every shard), read on scrape. */
  streamLag?: () => Promise<StreamLag>;
  /** The latest stored audit report, read on scrape. */
  auditReport?: () => Promise<AuditReport | undefined>;
  /** How long a scrape reuses the stream lag and audit report it read, ms. @default 5000 */
  collectCacheMs?: number;
  /** Requests admitted and not yet answered (the admission control's count), read on scrape. */
  inFlight?: () => number;
  /** The deferral lane's state (deferral starts in flight and waiting), read on scrape. */
  deferralLane?: () => DeferralLaneState;
  /**
   * Observe this process: event-loop lag (`tollgate_event_loop_lag_seconds`) and prom-client's
   * process metrics (`process_resident_memory_bytes`, …). One registry per process should. @default false
   */
  isProcessObserved?: boolean;
}

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

  /** Scrape-time reads (stream lag, audit report) that failed; the gauges kept their last values. */
  readonly collectFailures: Counter<'source'>;
  /**
   * Requests shed (503 OVERLOADED), by their plan's criticality and the bound that shed them: `in-flight`
   * (admission control) or `deferral-lane` (a deferral refused before it was recorded).
   */
  readonly shed: Counter<'criticality' | 'reason'>;

  constructor(options: TollgateMetricsOptions = {}) {
    const registers = [this.registry];
    this.decisions = new Counter({
      name: 'tollgate_decisions_total',
      help: 'Limit decisions by kind and deciding limit',
      labelNames: ['kind', 'limit'],
      registers,
    });
    this.deciderLatency = new Histogram({
      name: 'tollgate_decider_latency_seconds',
      help: 'Time from asking the decider to its decision',
      buckets: [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.refusals = new Counter({
      name: 'tollgate_refusals_total',
      help: 'Requests refused before a decision, by error code',
      labelNames: ['code'],
      registers,
    });
    this.costUnits = new Counter({
      name: 'tollgate_cost_units_total',
      help: 'Cost units requested, actual, refunded and overrun',
      labelNames: ['kind'],
      registers,
    });
    this.settleFailures = new Counter({ name: 'tollgate_settle_failures_total', help: 'Settlements that could not be applied', registers });
    this.idempotentReplays = new Counter({
      name: 'tollgate_idempotent_replays_total',
      help: 'Idempotency-Key retries of an admitted request: first response sent again (replayed) or not available (409)',
      labelNames: ['outcome'],
      registers,
    });
    this.collectFailures = new Counter({
      name: 'tollgate_metrics_collect_failures_total',
      help: 'Scrape-time reads that failed (the gauges kept their last values)',
      labelNames: ['source'],
      registers,
    });
    this.shed = new Counter({
      name: 'tollgate_shed_total',
      help: 'Requests shed with 503 OVERLOADED, by criticality and reason (in-flight: admission control, before pricing and the decider; deferral-lane: a deferral refused before it was recorded or charged; decider-wait: the decider answer read past DECIDER_MAX_WAIT_MS because this process was busy, not Redis)',
      labelNames: ['criticality', 'reason'],
      registers,
    });
    this.registerScrapeGauges(options);
    const inFlight = options.inFlight;
    if (inFlight !== undefined) {
      new Gauge({
        name: 'tollgate_in_flight_requests',
        help: 'GraphQL requests admitted by admission control and not yet answered',
        registers,
        collect() {
          this.set(inFlight());
        },
      });
    }
    if (options.deferralLane !== undefined) this.observeDeferralLane(options.deferralLane);
    if (options.degraded !== undefined) this.registerDegradedGauges(options.degraded);
    if (options.isProcessObserved === true) this.observeProcess();
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

  /** The spool (entries, age, writable, lost units) and the backstop's instance count, read on scrape. */
  private registerDegradedGauges(degraded: DegradedModeGauges): void {
    const registers = [this.registry];
    const gauge = (name: string, help: string, read: () => number): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    };
    gauge(
      'tollgate_spool_entries',
      'Degraded-mode usage entries in the local spool, waiting to be replayed into Redis',
      () => degraded.spool().entries,
    );
    gauge(
      'tollgate_spool_oldest_age_seconds',
      'Age of the oldest entry waiting in the spool, seconds (0: empty)',
      () => degraded.spool().oldestAgeSeconds,
    );
    gauge('tollgate_spool_writable', 'Whether the spool folder can be written (0: degraded admissions are lost)', () =>
      degraded.spool().isWritable ? 1 : 0,
    );
    gauge(
      'tollgate_spool_lost_units',
      'Degraded admitted units that could not be spooled since start: never billed',
      () => degraded.spool().lost.units,
    );
    gauge(
      'tollgate_spool_lost_entries',
      'Spool entries (admissions, refunds, voids) that could not be written since start',
      () => degraded.spool().lost.entries,
    );
    const callFailures = degraded.callFailures;
    if (callFailures !== undefined) {
      new Counter({
        name: 'tollgate_decider_call_failures_total',
        help:
          "Decider script calls that failed, by cause: timeout (Redis' share of the call reached DECIDER_TIMEOUT_MS), " +
          'wall-clock-cap (DECIDER_MAX_WAIT_MS reached; with few timeouts this process was busy, not Redis), lost-connection, unreachable',
        labelNames: ['cause'],
        registers,
        collect() {
          this.reset();
          for (const [cause, count] of Object.entries(callFailures())) this.inc({ cause }, count);
        },
      });
    }
    const instances = degraded.instances;
    if (instances !== undefined) {
      gauge('tollgate_decider_instances', 'Live API instances the local backstop divides each limit by (last count read)', instances);
    }
  }

  /**
   * Event-loop lag since the previous scrape (perf_hooks, 10 ms resolution) by quantile, and the
   * process metrics. A busy loop delays every Redis reply (STACK gotcha 12): read this before blaming Redis.
   */
  private observeProcess(): void {
    const resolutionMs = 10;
    const delay = monitorEventLoopDelay({ resolution: resolutionMs });
    delay.enable();
    // the histogram holds whole timer intervals: the lag is what exceeds the resolution
    const lagSeconds = (nanoseconds: number): number => Math.max(0, nanoseconds - resolutionMs * 1e6) / 1e9;
    new Gauge({
      name: 'tollgate_event_loop_lag_seconds',
      help: 'Event-loop delay since the previous scrape, by quantile (0.5, 0.99, 1 = max), seconds',
      labelNames: ['quantile'],
      registers: [this.registry],
      collect() {
        for (const quantile of [0.5, 0.99]) this.set({ quantile: String(quantile) }, lagSeconds(delay.percentile(quantile * 100)));
        this.set({ quantile: '1' }, lagSeconds(delay.max));
        delay.reset();
      },
    });
    collectDefaultMetrics({ register: this.registry });
  }

  /** The deferral lane's gauges: how much deferral work this instance has in hand, and how long the oldest has waited. */
  private observeDeferralLane(state: () => DeferralLaneState): void {
    const registers = [this.registry];
    const laneGauge = (name: string, help: string, pick: (value: DeferralLaneState) => number): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(pick(state()));
        },
      });
    };
    laneGauge('tollgate_deferral_lane_in_flight', 'Deferrals (job record and Temporal start) running now', (value) => value.inFlight);
    laneGauge('tollgate_deferral_lane_queued', 'Deferrals waiting for a slot of the deferral lane', (value) => value.queued);
    laneGauge(
      'tollgate_deferral_lane_oldest_seconds',
      'How long the oldest deferral waiting for a slot has waited, seconds (0: none waits)',
      (value) => value.oldestQueuedMs / 1_000,
    );
  }

  /** Gauges read at scrape time (stream lag, the last audit report), each source cached for `collectCacheMs`. */
  private registerScrapeGauges(options: TollgateMetricsOptions): void {
    const registers = [this.registry];
    const cacheMs = options.collectCacheMs ?? 5_000;
    if (options.streamLag !== undefined) {
      const lag = cachedFetch(options.streamLag, cacheMs, () => this.collectFailures.inc({ source: 'stream_lag' }));
      const lagGauge = (name: string, help: string, pick: (value: StreamLag) => number): void => {
        new Gauge({
          name,
          help,
          registers,
          async collect() {
            const value = await lag();
            if (value !== undefined) this.set(pick(value));
          },
        });
      };
      lagGauge(
        'tollgate_usage_stream_unacknowledged_entries',
        'Stream lag: usage entries the pump has not acknowledged (pending + undelivered), all shards',
        (value) => value.unacknowledged,
      );
      lagGauge(
        'tollgate_ledger_lag_seconds',
        'Ledger lag: age of the oldest usage entry not yet acknowledged (so maybe not yet in the ledger), seconds',
        (value) => value.oldestUnacknowledgedAgeSeconds,
      );
      lagGauge(
        'tollgate_usage_dead_letters',
        'Usage entries in the dead-letter streams (never ledgered), all shards',
        (value) => value.deadLetters,
      );
    }
    if (options.auditReport !== undefined) {
      const report = cachedFetch(options.auditReport, cacheMs, () => this.collectFailures.inc({ source: 'audit_report' }));
      const auditGauge = (name: string, help: string, pick: (value: AuditReport) => number): void => {
        new Gauge({
          name,
          help,
          registers,
          async collect() {
            const value = await report();
            if (value !== undefined) this.set(pick(value));
          },
        });
      };
      auditGauge(
        'tollgate_audit_drift_units',
        'Sum of |admitted - ledgered - in flight| over all tenant-periods, last audit cycle',
        (value) => value.summary.absoluteDrift,
      );
      auditGauge(
        'tollgate_audit_drifting_periods',
        'Tenant-periods whose ledger disagrees with the admitted counter, last audit cycle',
        (value) => value.summary.drifting,
      );
      auditGauge(
        'tollgate_audit_unsettled_periods',
        'Tenant-periods the last audit cycle could not compare (busy or backlog)',
        (value) => value.summary.unsettled,
      );
      auditGauge('tollgate_audit_last_cycle_timestamp_seconds', 'When the last stored audit cycle finished (unix seconds)', (value) =>
        Math.floor(value.finishedAtMs / 1_000),
      );
    }
  }
}
