import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { planLedgerTransactions, runWithoutSharedBalances } from '../../../src/metering/index.js';

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

describe('runWithoutSharedBalances', () => {
  it('runs every transaction once, at most inFlight at a time, never two moving one balance together', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(entryArb, { maxLength: 300 }),
        fc.integer({ min: 2, max: 40 }),
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 20 }),
        async (entries, maxItems, inFlight, delays) => {
          const plan = planLedgerTransactions(entries, maxItems);
          const busy = new Map<string, number>();
          let running = 0;
          let peak = 0;
          const ran: number[] = [];
          await runWithoutSharedBalances(plan, inFlight, async (transaction) => {
            const index = plan.indexOf(transaction);
            running += 1;
            peak = Math.max(peak, running);
            const balances = transaction.map((chunk) => `${chunk.tenant}#${chunk.periodStart}`);
            for (const balance of balances) {
              expect(busy.get(balance) ?? 0).toBe(0);
              busy.set(balance, 1);
            }
            // yield a varying number of turns so transactions overlap in many orders
            for (let turn = 0; turn < (delays[index % delays.length] ?? 0); turn += 1) await Promise.resolve();
            for (const balance of balances) busy.set(balance, 0);
            running -= 1;
            ran.push(index);
          });
          expect(peak).toBeLessThanOrEqual(inFlight);
          expect([...ran].sort((a, b) => a - b)).toEqual(plan.map((_, index) => index));
        },
      ),
    );
  });

  it('after a failure starts nothing new, waits for what runs, and throws the first error', async () => {
    // given four transactions on four balances, two at a time, the first failing
    const plan = planLedgerTransactions(
      ['a', 'b', 'c', 'd'].map((tenant) => ({ tenant, periodStart: '2026-11-01T00:00:00.000Z', eventId: tenant, amount: 1 })),
      2,
    );
    const started: string[] = [];
    let settledSecond = false;
    const outcome = runWithoutSharedBalances(plan, 2, async (transaction) => {
      const tenant = transaction[0]?.tenant ?? '';
      started.push(tenant);
      if (tenant === 'a') throw new Error('first failed');
      await new Promise((resolveLater) => setTimeout(resolveLater, 5));
      settledSecond = true;
    });
    await expect(outcome).rejects.toThrow('first failed');
    // then the one already running finished before the rejection, and no other began
    expect(settledSecond).toBe(true);
    expect(started).toEqual(['a', 'b']);
  });
});
