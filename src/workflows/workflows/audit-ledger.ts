/**
 * auditLedger (`audit/<scope>`): the metering audit, forever. A cycle walks
 * every admitted counter with SCAN pages (`auditLedgerPage`: one page per
 * activity, bounded work), merges the pages' summaries, stores the cycle's
 * report (`storeAuditReport`) and waits `intervalMs` on a durable timer. It
 * keeps only the scan position and the running summary (≤ 20 samples), and
 * continues as new every `pagesPerRun` pages or when Temporal suggests it.
 * New settings arrive by `auditSettingsSignal` and apply from the next run.
 */
import { continueAsNew, defineQuery, defineSignal, proxyActivities, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import type { AuditActivities } from '../activities/index.js';
import { EMPTY_AUDIT_SUMMARY, mergeSummaries, type AuditSummary } from '../../metering/model/audit.js';

/** Timing and sizing of the audit; from configuration (`AUDIT_*`). */
export interface AuditSettings {
  /** Wait between the end of a cycle and the start of the next, ms. */
  intervalMs: number;
  /** SCAN COUNT per page. */
  scanCount: number;
  /** Pages per run before continue-as-new. */
  pagesPerRun: number;
  /** Start-to-close timeout of one page, ms. */
  activityTimeoutMs: number;
}

export interface AuditCycleState {
  /** Cycles completed since the workflow first started. */
  completedCycles: number;
  /** Where the cycle in progress continues. */
  position: { node: number; cursor: string };
  /** When the cycle in progress started (workflow time, epoch ms). */
  startedAtMs: number;
  summary: AuditSummary;
  /** The last completed cycle's summary (undefined before the first). */
  last?: AuditSummary;
}

export interface AuditLedgerInput {
  scope: string;
  settings: AuditSettings;
  /** Carried over by continue-as-new; absent on the first start. */
  state?: AuditCycleState;
}

export const auditStateQuery = defineQuery<AuditCycleState>('auditState');
export const auditSettingsSignal = defineSignal<[AuditSettings]>('auditSettings');

function isSameSettings(a: AuditSettings, b: AuditSettings): boolean {
  return (
    a.intervalMs === b.intervalMs &&
    a.scanCount === b.scanCount &&
    a.pagesPerRun === b.pagesPerRun &&
    a.activityTimeoutMs === b.activityTimeoutMs
  );
}

/** Audits the ledger against the admitted counters, cycle after cycle. */
export async function auditLedger(input: AuditLedgerInput): Promise<never> {
  const { settings } = input;
  const { auditLedgerPage, storeAuditReport } = proxyActivities<AuditActivities>({
    startToCloseTimeout: settings.activityTimeoutMs,
    retry: {
      initialInterval: '1 second',
      backoffCoefficient: 2,
      maximumInterval: '1 minute',
      nonRetryableErrorTypes: ['INVALID_ID', 'INVALID_INPUT', 'INVARIANT_VIOLATED'],
    },
  });
  let state: AuditCycleState = input.state ?? {
    completedCycles: 0,
    position: { node: 0, cursor: '0' },
    startedAtMs: Date.now(),
    summary: EMPTY_AUDIT_SUMMARY,
  };
  let nextSettings: AuditSettings | undefined;
  setHandler(auditStateQuery, () => state);
  setHandler(auditSettingsSignal, (update) => {
    nextSettings = isSameSettings(update, settings) ? undefined : update;
  });
  for (let page = 0; page < settings.pagesPerRun; page += 1) {
    const result = await auditLedgerPage({ position: state.position, scanCount: settings.scanCount });
    const summary = mergeSummaries(state.summary, result.summary);
    if (result.next !== null) {
      state = { ...state, position: result.next, summary };
    } else {
      const cycle = state.completedCycles + 1;
      await storeAuditReport({ scope: input.scope, cycle, startedAtMs: state.startedAtMs, finishedAtMs: Date.now(), summary });
      state = { ...state, completedCycles: cycle, position: { node: 0, cursor: '0' }, summary: EMPTY_AUDIT_SUMMARY, last: summary };
      await sleep(settings.intervalMs);
      state = { ...state, startedAtMs: Date.now() };
    }
    if (nextSettings !== undefined || workflowInfo().continueAsNewSuggested) break;
  }
  return continueAsNew<typeof auditLedger>({ scope: input.scope, settings: nextSettings ?? settings, state });
}
