/**
 * Prometheus metrics of the worker process (the pump and the audit run here,
 * not in the API; stream lag and audit drift are the API's, read from Redis and
 * the stored report), served on `WORKER_METRICS_PORT` at `/metrics`. A registry
 * of its own; no label carries a tenant (bounded cardinality).
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import type { AuditSummary, PumpBatchResult, StreamLag } from '../metering/index.js';
import type { JobSweepCounts } from '../jobs/index.js';

/**
 * Whether the pump fleet makes no progress: entries wait in the streams longer
 * than `stallAfterSeconds` and no batch of this worker handled an entry for as
 * long (a livelocked or starved worker, a dependency down). An idle fleet
 * (nothing unacknowledged) and a busy one that drains are not stalled.
 */
export function isFleetStalled(input: {
  unacknowledged: number;
  oldestUnacknowledgedAgeSeconds: number;
  secondsSinceProgress: number;
  stallAfterSeconds: number;
}): boolean {
  return (
    input.unacknowledged > 0 &&
    input.oldestUnacknowledgedAgeSeconds >= input.stallAfterSeconds &&
    input.secondsSinceProgress >= input.stallAfterSeconds
  );
}

/** The pump fleet's health (`WorkerMetrics.fleetHealth`); the figures are absent when the lag could not be read. */
export interface FleetHealth {
  isStalled: boolean;
  unacknowledged?: number;
  oldestUnacknowledgedAgeSeconds?: number;
  secondsSinceProgress?: number;
}

/** What `/ready` answers: ready, or not with a stable reason code and the figures behind it. */
export type Readiness = { isReady: true } | { isReady: false; reason: string; details?: Record<string, number> };

/** How long a fleet's stream lag is read once for every gauge of one scrape, ms. */
const LAG_CACHE_MS = 1_000;

/** The worker's metrics registry: what its pumps reconciled and its audit cycles. */
export class WorkerMetrics {
  readonly registry = new Registry();
  /** Usage events the pump handled, by outcome: posted (ledgered now), duplicate (already ledgered), dead_lettered. */
  readonly meterEvents: Counter<'outcome'>;
  /** Pump batches that failed (retried by Temporal). */
  readonly meterBatchFailures: Counter;
  /** Audit cycles this worker completed, by result (clean, drift). Drift itself: the API's gauges, from the stored report. */
  readonly auditCycles: Counter<'result'>;
  /** Unfinished deferred jobs the sweep looked at, by outcome (running, restarted, ended, finished, stranded). */
  readonly jobsSwept: Counter<'outcome'>;
  private readonly nowMs: () => number;
  private lastProgressMs: number;
  private fleet: { readLag: () => Promise<StreamLag>; stallAfterSeconds: number } | undefined;
  private lag: { atMs: number; value: Promise<StreamLag> } | undefined;

  /** @param options.nowMs the clock of the progress and lag gauges (tests) @default Date.now */
  constructor(options: { nowMs?: () => number } = {}) {
    this.nowMs = options.nowMs ?? Date.now;
    this.lastProgressMs = this.nowMs();
    const registers = [this.registry];
    this.meterEvents = new Counter({
      name: 'tollgate_meter_events_total',
      help: 'Usage events reconciled into the ledger by the pump, by outcome',
      labelNames: ['outcome'],
      registers,
    });
    this.meterBatchFailures = new Counter({
      name: 'tollgate_meter_batch_failures_total',
      help: 'Pump batches that failed and were retried',
      registers,
    });
    this.auditCycles = new Counter({
      name: 'tollgate_audit_cycles_total',
      help: 'Audit cycles completed by this worker, by result',
      labelNames: ['result'],
      registers,
    });
    this.jobsSwept = new Counter({
      name: 'tollgate_jobs_swept_total',
      help: 'Unfinished deferred jobs the jobs sweep looked at, by outcome',
      labelNames: ['outcome'],
      registers,
    });
    this.registerFleetGauges(registers);
  }

  /** Gauges of the pump fleet's health; the lag ones read Redis on scrape once `watchFleet` was called. */
  private registerFleetGauges(registers: Registry[]): void {
    const secondsSinceProgress = (): number => Math.floor((this.nowMs() - this.lastProgressMs) / 1_000);
    new Gauge({
      name: 'tollgate_meter_seconds_since_progress',
      help: 'Seconds since a pump batch of this worker last handled an entry (since the worker started when none has)',
      registers,
      collect() {
        this.set(secondsSinceProgress());
      },
    });
    const withLag = (set: (lag: StreamLag, stallAfterSeconds: number) => void) => async (): Promise<void> => {
      if (this.fleet === undefined) return;
      try {
        set(await this.readLag(this.fleet.readLag), this.fleet.stallAfterSeconds);
      } catch {
        // Redis unreachable: the gauges keep their last values; the batch failures counter tells the rest
      }
    };
    const unacknowledged = new Gauge({
      name: 'tollgate_meter_unacknowledged_entries',
      help: "Usage entries of this worker's shards not yet acknowledged by a pump (pending and undelivered)",
      registers,
      collect: withLag((lag) => unacknowledged.set(lag.unacknowledged)),
    });
    const stalled = new Gauge({
      name: 'tollgate_meter_fleet_stalled',
      help: '1 when entries waited longer than WORKER_STALL_AFTER_MS and no batch of this worker handled one for as long',
      registers,
      collect: withLag((lag, stallAfterSeconds) =>
        stalled.set(isFleetStalled({ ...lag, secondsSinceProgress: secondsSinceProgress(), stallAfterSeconds }) ? 1 : 0),
      ),
    });
  }

  /** Reads the fleet's lag from Redis on scrape (once per scrape for every gauge). */
  watchFleet(input: { readLag: () => Promise<StreamLag>; stallAfterMs: number }): void {
    this.fleet = { readLag: input.readLag, stallAfterSeconds: Math.ceil(input.stallAfterMs / 1_000) };
  }

  private readLag(read: () => Promise<StreamLag>): Promise<StreamLag> {
    const nowMs = this.nowMs();
    if (this.lag === undefined || nowMs - this.lag.atMs > LAG_CACHE_MS) this.lag = { atMs: nowMs, value: read() };
    return this.lag.value;
  }

  /**
   * The fleet's health as `/ready` reports it: stalled (see isFleetStalled) with the figures that say so.
   * Unknown (not stalled) when no fleet is watched or Redis cannot be read.
   */
  async fleetHealth(): Promise<FleetHealth> {
    if (this.fleet === undefined) return { isStalled: false };
    const secondsSinceProgress = Math.floor((this.nowMs() - this.lastProgressMs) / 1_000);
    let lag: StreamLag;
    try {
      lag = await this.readLag(this.fleet.readLag);
    } catch {
      return { isStalled: false };
    }
    const { unacknowledged, oldestUnacknowledgedAgeSeconds } = lag;
    const figures = { unacknowledged, oldestUnacknowledgedAgeSeconds, secondsSinceProgress };
    return { isStalled: isFleetStalled({ ...figures, stallAfterSeconds: this.fleet.stallAfterSeconds }), ...figures };
  }

  recordBatch(result: PumpBatchResult): void {
    if (result.read > 0) this.lastProgressMs = this.nowMs();
    this.meterEvents.inc({ outcome: 'posted' }, result.posted);
    this.meterEvents.inc({ outcome: 'duplicate' }, result.duplicates);
    this.meterEvents.inc({ outcome: 'dead_lettered' }, result.deadLettered);
  }

  recordJobSweep(counts: JobSweepCounts): void {
    for (const outcome of ['running', 'restarted', 'ended', 'finished', 'stranded'] as const) {
      if (counts[outcome] > 0) this.jobsSwept.inc({ outcome }, counts[outcome]);
    }
  }

  recordAudit(input: { summary: AuditSummary }): void {
    this.auditCycles.inc({ result: input.summary.drifting > 0 ? 'drift' : 'clean' });
  }
}

/**
 * Serves `GET /metrics` from the registry and `GET /ready`: 200 `{ ready: true }` once `readiness` says so (the
 * worker polls, its fleet is ensured and not stalled), otherwise 503 `{ ready: false, reason, ...details }`;
 * resolves once listening.
 */
export async function serveWorkerMetrics(input: {
  registry: Registry;
  host: string;
  port: number;
  readiness?: () => Promise<Readiness>;
}): Promise<Server> {
  const server = createServer((request, response) => {
    if (request.method === 'GET' && request.url === '/ready') {
      (input.readiness?.() ?? Promise.resolve<Readiness>({ isReady: true })).then(
        (readiness) => {
          const body = readiness.isReady ? { ready: true } : { ready: false, reason: readiness.reason, ...readiness.details };
          response.writeHead(readiness.isReady ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(body));
        },
        () => response.writeHead(500).end(),
      );
      return;
    }
    if (request.method !== 'GET' || request.url !== '/metrics') {
      response.writeHead(404).end();
      return;
    }
    input.registry.metrics().then(
      (body) => response.writeHead(200, { 'content-type': input.registry.contentType }).end(body),
      () => response.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(input.port, input.host, () => resolve());
  });
  return server;
}
