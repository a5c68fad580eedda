/**
 * Prometheus metrics of the worker process (the pump and the audit run here,
 * not in the API), served on `WORKER_METRICS_PORT` at `/metrics`. A registry
 * of its own; no label carries a tenant (bounded cardinality).
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import type { AuditSummary, PumpBatchResult } from '../metering/index.js';

export class WorkerMetrics {
  readonly registry = new Registry();
  /** Usage events the pump handled, by outcome: posted (ledgered now), duplicate (already ledgered), dead_lettered. */
  readonly meterEvents: Counter<'outcome'>;
  /** Pump batches that failed (retried by Temporal). */
  readonly meterBatchFailures: Counter;
  /** The last audit cycle this worker completed. */
  readonly auditDriftUnits: Gauge;
  readonly auditDriftingPeriods: Gauge;
  readonly auditUnsettledPeriods: Gauge;
  readonly auditLastCycleSeconds: Gauge;

  constructor() {
    const registers = [this.registry];
    this.meterEvents = new Counter({ name: 'tollgate_meter_events_total', help: 'Usage events reconciled into the ledger by the pump, by outcome', labelNames: ['outcome'], registers });
    this.meterBatchFailures = new Counter({ name: 'tollgate_meter_batch_failures_total', help: 'Pump batches that failed and were retried', registers });
    this.auditDriftUnits = new Gauge({ name: 'tollgate_audit_drift_units', help: 'Sum of |admitted - ledgered - in flight| over all tenant-periods, last audit cycle', registers });
    this.auditDriftingPeriods = new Gauge({ name: 'tollgate_audit_drifting_periods', help: 'Tenant-periods whose ledger disagrees with the admitted counter, last audit cycle', registers });
    this.auditUnsettledPeriods = new Gauge({ name: 'tollgate_audit_unsettled_periods', help: 'Tenant-periods the last audit cycle could not compare (busy or backlog)', registers });
    this.auditLastCycleSeconds = new Gauge({ name: 'tollgate_audit_last_cycle_timestamp_seconds', help: 'When the last audit cycle finished (unix seconds)', registers });
  }

  recordBatch(result: PumpBatchResult): void {
    this.meterEvents.inc({ outcome: 'posted' }, result.posted);
    this.meterEvents.inc({ outcome: 'duplicate' }, result.duplicates);
    this.meterEvents.inc({ outcome: 'dead_lettered' }, result.deadLettered);
  }

  recordAudit(input: { summary: AuditSummary; finishedAtMs: number }): void {
    this.auditDriftUnits.set(input.summary.absoluteDrift);
    this.auditDriftingPeriods.set(input.summary.drifting);
    this.auditUnsettledPeriods.set(input.summary.unsettled);
    this.auditLastCycleSeconds.set(Math.floor(input.finishedAtMs / 1_000));
  }
}

/** Serves `GET /metrics` from the registry; resolves once listening. */
export async function serveWorkerMetrics(input: { registry: Registry; host: string; port: number }): Promise<Server> {
  const server = createServer((request, response) => {
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
