import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { planLedgerTransactions } from '../../../src/metering/index.js';

const entryArb = fc.record({
  tenant: fc.constantFrom('a', 'b', 'c'),
  periodStart: fc.constantFrom('2026-10-01T00:00:00.000Z', '2026-11-01T00:00:00.000Z'),
  eventId: fc.uuid(),
  amount: fc.integer({ min: -1000, max: 1000 }),
});

describe('planLedgerTransactions', () => {
  it('keeps every transaction within the item limit, each balance once per transaction, and every entry exactly once', () => {
    fc.assert(
      fc.property(fc.array(entryArb, { maxLength: 400 }), fc.integer({ min: 2, max: 100 }), (entries, maxItems) => {
        const plan = planLedgerTransactions(entries, maxItems);
        const seen: string[] = [];
        for (const transaction of plan) {
          const items = transaction.reduce((sum, chunk) => sum + chunk.entries.length + 1, 0);
          expect(items).toBeLessThanOrEqual(maxItems);
          const balances = transaction.map((chunk) => `${chunk.tenant}#${chunk.periodStart}`);
          expect(new Set(balances).size).toBe(balances.length);
          for (const chunk of transaction) {
            expect(chunk.entries.length).toBeGreaterThan(0);
            expect(chunk.amount).toBe(chunk.entries.reduce((sum, entry) => sum + entry.amount, 0));
            for (const entry of chunk.entries) {
              expect(`${entry.tenant}#${entry.periodStart}`).toBe(`${chunk.tenant}#${chunk.periodStart}`);
              seen.push(entry.eventId);
            }
          }
        }
        expect(seen.sort()).toEqual(entries.map((entry) => entry.eventId).sort());
      }),
    );
  });
});
