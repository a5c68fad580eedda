/**
 * Prometheus metrics of the worker process (the pump and the audit run here,
 * not in the API; stream lag and audit drift are the API's, read from Redis and
 * the stored report), served on `WORKER_METRICS_PORT` at `/metrics`. A registry
 * of its own; no label carries a tenant (bounded cardinality).
 */
import { createServer, type Server } from 'node:http';
import { Counter, Registry } from 'prom-client';
import type { AuditSummary, PumpBatchResult } from '../metering/index.js';
import type { JobSweepCounts } from '../jobs/index.js';

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

  constructor() {
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
  }

  recordBatch(result: PumpBatchResult): void {
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
