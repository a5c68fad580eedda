import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  EMPTY_AUDIT_SUMMARY,
  SAMPLE_LIMIT,
  addToSummary,
  inFlightOf,
  ledgeredFor,
  mergeSummaries,
  tenantPeriodAudit,
  unacknowledged,
  type InFlightEvent,
  type TenantPeriodAudit,
} from '../../../src/metering/index.js';

const P = Date.UTC(2026, 10, 1);

function event(index: number, input: Partial<InFlightEvent> = {}): InFlightEvent {
  return { id: `1700000000000-${index}`, eventId: `e${index}`, tenant: 'a', billingPeriodStartMs: P, amount: 10, ...input };
}

describe('audit arithmetic', () => {
  it('counts as unacknowledged exactly the pending entries and those after the last delivered id', () => {
    const entries = [event(1), event(2), event(3), event(4), event(10)];
    // 1 and 2 acknowledged, 3 pending, 4 delivered and acknowledged, 10 never delivered
    expect(
      unacknowledged({ entries, pendingIds: new Set(['1700000000000-3']), lastDeliveredId: '1700000000000-4' }).map(
        (entry) => entry.eventId,
      ),
    ).toEqual(['e3', 'e10']);
    // ids compare numerically, not as strings (…-10 is after …-4)
    expect(unacknowledged({ entries: [event(10)], pendingIds: new Set(), lastDeliveredId: '1700000000000-9' })).toHaveLength(1);
  });

  it('sums only this tenant and period, skips what the ledger holds, and counts a repeated event id once (as a duplicate)', () => {
    const events = [
      event(1),
      event(2, { amount: -3 }),
      event(3, { tenant: 'b' }),
      event(4, { billingPeriodStartMs: P + 1 }),
      event(5, { eventId: 'e1' }),
      event(6),
    ];
    expect(inFlightOf({ events, tenant: 'a', billingPeriodStartMs: P, ledgered: new Set(['e6']) })).toEqual({
      amount: 7,
      eventIds: ['e1', 'e2', 'e6'],
      duplicateEvents: 1,
    });
  });

  it('moves late credits to the period they belong to', () => {
    expect(ledgeredFor({ amount: 100, lateAmount: 13, lateCredited: 0 })).toBe(87);
    expect(ledgeredFor({ amount: 50, lateAmount: 0, lateCredited: 13 })).toBe(63);
  });

  it('drift is admitted − ledgered − in flight, and an unsafe integer is refused', () => {
    const base = { tenant: 'a', periodStart: '2026-11-01T00:00:00.000Z', ledgerEntries: 3, duplicateEvents: 0, parts: 1 };
    expect(tenantPeriodAudit({ ...base, admitted: 100, ledgered: 90, inFlight: 3 }).drift).toBe(7);
    expect(() => tenantPeriodAudit({ ...base, admitted: 2 ** 53, ledgered: -1, inFlight: 0 })).toThrow(RangeError);
  });

  it('summaries merged page by page equal the summary of all reports at once, with at most 20 samples, largest drift first', () => {
    const report = fc
      .record({ drift: fc.integer({ min: -50, max: 50 }), duplicateEvents: fc.nat({ max: 2 }) })
      .map(({ drift, duplicateEvents }): TenantPeriodAudit => ({
        tenant: 'a',
        periodStart: 'p',
        admitted: 0,
        ledgered: 0,
        inFlight: 0,
        drift,
        ledgerEntries: 0,
        duplicateEvents,
        parts: 1,
      }));
    const page = fc.record({ reports: fc.array(report, { maxLength: 30 }), unsettled: fc.nat({ max: 5 }) });
    fc.assert(
      fc.property(fc.array(page, { maxLength: 6 }), (pages) => {
        const merged = pages.reduce(
          (summary, item) => mergeSummaries(summary, addToSummary(EMPTY_AUDIT_SUMMARY, item)),
          EMPTY_AUDIT_SUMMARY,
        );
        const whole = addToSummary(EMPTY_AUDIT_SUMMARY, {
          reports: pages.flatMap((item) => item.reports),
          unsettled: pages.reduce((sum, item) => sum + item.unsettled, 0),
        });
        expect({ ...merged, samples: merged.samples.map((sample) => Math.abs(sample.drift)) }).toEqual({
          ...whole,
          samples: whole.samples.map((sample) => Math.abs(sample.drift)),
        });
        expect(merged.samples.length).toBeLessThanOrEqual(SAMPLE_LIMIT);
        const all = pages.flatMap((item) => item.reports);
        expect(merged.drifting).toBe(all.filter((item) => item.drift !== 0 || item.duplicateEvents > 0).length);
        expect(merged.absoluteDrift).toBe(all.reduce((sum, item) => sum + Math.abs(item.drift), 0));
      }),
    );
  });
});
