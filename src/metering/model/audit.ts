/**
 * The metering audit's arithmetic (DESIGN §6 invariant). Pure: no I/O.
 *
 * For one tenant and billing period:
 *   admitted  = Σ the decider's admitted counters (one per sub-shard part)
 *   ledgered  = the ledger balance of the period, minus late credits it holds for
 *               other periods, plus late credits held elsewhere for this period
 *   inFlight  = Σ amounts of this tenant's events of this period that are still in
 *               a usage stream unacknowledged (pending in the group, or not yet
 *               delivered) and not yet in the ledger
 *   drift     = admitted − ledgered − inFlight          (0 when metering is exact)
 *
 * Every admitted unit moves the counter and appends its event in the same
 * script call, so `admitted = ledgered + inFlight` holds at every instant;
 * the audit reads it from one consistent snapshot (see `audit.ts`).
 */

/** A stream entry reduced to what the audit needs (already parsed as a usage event). */
export interface InFlightEvent {
  /** Stream entry id (`<ms>-<seq>`). */
  id: string;
  eventId: string;
  tenant: string;
  billingPeriodStartMs: number;
  /** Signed cost units the event moves the ledger by. */
  amount: number;
}

/** Compares two stream ids numerically (`<ms>-<seq>`). */
export function compareStreamIds(a: string, b: string): number {
  const [aMs = '0', aSeq = '0'] = a.split('-');
  const [bMs = '0', bSeq = '0'] = b.split('-');
  const byMs = BigInt(aMs) - BigInt(bMs);
  if (byMs !== 0n) return byMs < 0n ? -1 : 1;
  const bySeq = BigInt(aSeq) - BigInt(bSeq);
  return bySeq === 0n ? 0 : bySeq < 0n ? -1 : 1;
}

/**
 * The entries of a stream snapshot that the consumer group has not
 * acknowledged: those in its pending list, and those after its last delivered id.
 */
export function unacknowledged<E extends { id: string }>(input: {
  entries: readonly E[];
  pendingIds: ReadonlySet<string>;
  lastDeliveredId: string;
}): E[] {
  return input.entries.filter((entry) => input.pendingIds.has(entry.id) || compareStreamIds(entry.id, input.lastDeliveredId) > 0);
}

/** What the audit found for one tenant and period. JSON-safe. */
export interface TenantPeriodAudit {
  tenant: string;
  /** Period start, ISO-8601 UTC with ms (the ledger's period key). */
  periodStart: string;
  /** Σ admitted counters over the tenant's parts, cost units. */
  admitted: number;
  /** Ledger amount attributed to this period (late credits moved to their original period). */
  ledgered: number;
  /** Unacknowledged stream events of this tenant and period not yet in the ledger. */
  inFlight: number;
  /** admitted − ledgered − inFlight. */
  drift: number;
  /** Ledger entries counted by the balance item. */
  ledgerEntries: number;
  /**
   * Entries seen twice (the same event id in the unacknowledged stream entries more than once):
   * a producer appended one event twice, so the counter moved twice and the ledger once.
   */
  duplicateEvents: number;
  /** Admitted counters found non-zero (1 for an unsplit tenant; a whale's parts; at least 1). */
  parts: number;
}

/** Whether a report shows the invariant broken. */
export function isDrifting(report: Pick<TenantPeriodAudit, 'drift' | 'duplicateEvents'>): boolean {
  return report.drift !== 0 || report.duplicateEvents > 0;
}

/**
 * Sums the unacknowledged events of one tenant and period that the ledger
 * does not hold yet, and counts event ids that occur more than once.
 */
export function inFlightOf(input: {
  events: readonly InFlightEvent[];
  tenant: string;
  billingPeriodStartMs: number;
  /** Event ids the ledger already holds (read after the stream snapshot). */
  ledgered: ReadonlySet<string>;
}): { amount: number; eventIds: string[]; duplicateEvents: number } {
  const seen = new Set<string>();
  let amount = 0;
  let duplicateEvents = 0;
  for (const event of input.events) {
    if (event.tenant !== input.tenant || event.billingPeriodStartMs !== input.billingPeriodStartMs) continue;
    if (seen.has(event.eventId)) {
      duplicateEvents += 1;
      continue;
    }
    seen.add(event.eventId);
    if (!input.ledgered.has(event.eventId)) amount += event.amount;
  }
  return { amount, eventIds: [...seen], duplicateEvents };
}

/**
 * The ledger amount that belongs to a period: its partition's balance, minus
 * late credits it holds for earlier periods (`lateAmount`), plus late credits
 * of this period held in a later partition (`lateCredited`). See the ledger
 * item layout in `ledger-items.ts`.
 */
export function ledgeredFor(balance: { amount: number; lateAmount: number; lateCredited: number }): number {
  return balance.amount - balance.lateAmount + balance.lateCredited;
}

/** Builds one report; throws RangeError when an amount is not a safe integer. */
export function tenantPeriodAudit(input: Omit<TenantPeriodAudit, 'drift'>): TenantPeriodAudit {
  const drift = input.admitted - input.ledgered - input.inFlight;
  for (const [name, value] of Object.entries({ admitted: input.admitted, ledgered: input.ledgered, inFlight: input.inFlight, drift })) {
    if (!Number.isSafeInteger(value)) throw new RangeError(`audit ${name} of ${input.tenant} ${input.periodStart} is not a safe integer`);
  }
  return { ...input, drift };
}

/** Totals of an audit cycle (no per-tenant labels: bounded size, metrics-friendly). JSON-safe. */
export interface AuditSummary {
  /** Tenant-periods compared. */
  audited: number;
  /** Tenant-periods whose invariant is broken (drift ≠ 0 or duplicates). */
  drifting: number;
  /** Σ |drift| over all tenant-periods, cost units. */
  absoluteDrift: number;
  /** Tenant-periods skipped because their stream moved under every snapshot attempt (busy), or had too large a backlog. */
  unsettled: number;
  /** Up to `SAMPLE_LIMIT` drifting reports, for the operator (largest |drift| first). */
  samples: TenantPeriodAudit[];
}

/** Most drifting reports an AuditSummary keeps. */
export const SAMPLE_LIMIT = 20;

export const EMPTY_AUDIT_SUMMARY: AuditSummary = { audited: 0, drifting: 0, absoluteDrift: 0, unsettled: 0, samples: [] };

/** Adds a page of reports (and skipped tenant-periods) to a summary. */
export function addToSummary(summary: AuditSummary, input: { reports: readonly TenantPeriodAudit[]; unsettled: number }): AuditSummary {
  const drifting = input.reports.filter(isDrifting);
  const samples = [...summary.samples, ...drifting]
    .sort((a, b) => Math.abs(b.drift) - Math.abs(a.drift) || b.duplicateEvents - a.duplicateEvents)
    .slice(0, SAMPLE_LIMIT);
  return {
    audited: summary.audited + input.reports.length,
    drifting: summary.drifting + drifting.length,
    absoluteDrift: summary.absoluteDrift + drifting.reduce((sum, report) => sum + Math.abs(report.drift), 0),
    unsettled: summary.unsettled + input.unsettled,
    samples,
  };
}

/** Merges two summaries (pages of one cycle). */
export function mergeSummaries(a: AuditSummary, b: AuditSummary): AuditSummary {
  return {
    audited: a.audited + b.audited,
    drifting: a.drifting + b.drifting,
    absoluteDrift: a.absoluteDrift + b.absoluteDrift,
    unsettled: a.unsettled + b.unsettled,
    samples: [...a.samples, ...b.samples]
      .sort((x, y) => Math.abs(y.drift) - Math.abs(x.drift) || y.duplicateEvents - x.duplicateEvents)
      .slice(0, SAMPLE_LIMIT),
  };
}
