/**
 * Activities of the `audit/<scope>` workflow. Read-only on Redis and the
 * ledger; the one write (the cycle's report) is conditional on the cycle
 * number, so every activity is safe to retry.
 */
import { heartbeat } from '@temporalio/activity';
import {
  EMPTY_AUDIT_SUMMARY,
  addToSummary,
  type AuditScanPosition,
  type AuditSummary,
  type DynamoAuditStore,
  type MeteringAuditor,
  type TenantPeriodAudit,
} from '../../metering/index.js';
import type { Logger } from '../../shared/index.js';
import { asActivity } from './errors.js';

export interface AuditActivityDeps {
  auditor: MeteringAuditor;
  store: DynamoAuditStore;
  logger: Logger;
  /** Called with each stored cycle's totals (metrics). */
  onCycle?: (input: { summary: AuditSummary; finishedAtMs: number }) => void;
}

export interface AuditPageInput {
  position: AuditScanPosition;
  /** SCAN COUNT of the page. */
  scanCount: number;
}

export interface AuditPageActivityResult {
  summary: AuditSummary;
  next: AuditScanPosition | null;
  keysScanned: number;
}

export interface StoreAuditReportInput {
  scope: string;
  cycle: number;
  startedAtMs: number;
  finishedAtMs: number;
  summary: AuditSummary;
}

const logged = (report: TenantPeriodAudit) => ({
  tenant: report.tenant,
  periodStart: report.periodStart,
  admitted: report.admitted,
  ledgered: report.ledgered,
  inFlight: report.inFlight,
  drift: report.drift,
  duplicateEvents: report.duplicateEvents,
});

/** Activities of the audit workflow. */
export function createAuditActivities(deps: AuditActivityDeps) {
  return {
    /** Audits the tenant-periods one SCAN page finds; returns the page's summary (bounded) and where to continue. */
    async auditLedgerPage(input: AuditPageInput): Promise<AuditPageActivityResult> {
      return asActivity(async () => {
        heartbeat('scan');
        const page = await deps.auditor.auditPage({ position: input.position, count: input.scanCount });
        const reports = page.outcomes.flatMap((outcome) => (outcome.kind === 'audited' ? [outcome.report] : []));
        const summary = addToSummary(EMPTY_AUDIT_SUMMARY, { reports, unsettled: page.outcomes.length - reports.length });
        for (const report of summary.samples)
          deps.logger.warn({ code: 'METERING_DRIFT', ...logged(report) }, 'metering drift: admitted counter and ledger disagree');
        return { summary, next: page.next, keysScanned: page.keysScanned };
      });
    },

    /** Stores a completed cycle's report (an older cycle never replaces a newer one) and logs its totals. */
    async storeAuditReport(input: StoreAuditReportInput): Promise<{ isStored: boolean }> {
      return asActivity(async () => {
        const isStored = await deps.store.put(input);
        deps.onCycle?.({ summary: input.summary, finishedAtMs: input.finishedAtMs });
        const { summary } = input;
        const line = {
          scope: input.scope,
          cycle: input.cycle,
          audited: summary.audited,
          drifting: summary.drifting,
          absoluteDrift: summary.absoluteDrift,
          unsettled: summary.unsettled,
        };
        if (summary.drifting > 0) deps.logger.error({ code: 'METERING_DRIFT', ...line }, 'audit cycle found drift');
        else deps.logger.info(line, 'audit cycle clean');
        return { isStored };
      });
    },
  };
}

export type AuditActivities = ReturnType<typeof createAuditActivities>;
