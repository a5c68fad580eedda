import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { planLedgerTransactions } from '../../../src/metering/index.js';
import { hourOf, packWithRollups, rollupUpdates, rollupWrites, rollupsOf } from '../../../src/metering/model/rollups.js';

const HOUR_MS = 3_600_000;
const BASE_MS = Date.UTC(2026, 10, 30, 20);

const entryArb = fc.record({
  tenant: fc.constantFrom('a', 'b', 'c'),
  periodStart: fc.constantFrom('2026-10-01T00:00:00.000Z', '2026-11-01T00:00:00.000Z'),
  eventId: fc.uuid(),
  amount: fc.integer({ min: -1000, max: 1000 }),
  operation: fc.constantFrom('getA', 'getB', 'anonymous', 'getC', 'getD'),
  // hours on both sides of a UTC month boundary; some entries without a time (posted now)
  atMs: fc.option(fc.integer({ min: BASE_MS, max: BASE_MS + 8 * HOUR_MS }), { nil: undefined }),
});

describe('packWithRollups', () => {
  it('keeps entries + balances + distinct rollups within the limit, each balance once per transaction, every entry exactly once', () => {
    fc.assert(
      fc.property(fc.array(entryArb, { maxLength: 300 }), fc.integer({ min: 5, max: 100 }), (raw, maxItems) => {
        const entries = raw.map(({ atMs, ...entry }) => (atMs === undefined ? entry : { ...entry, atMs }));
        const nowMs = BASE_MS + 3 * HOUR_MS;
        const packed = packWithRollups(planLedgerTransactions(entries, maxItems), maxItems, nowMs);
        const seen: string[] = [];
        for (const transaction of packed) {
          const all = transaction.flatMap((chunk) => chunk.entries);
          // one hour later than planned (posting crossed an hour): still within the limit
          const items = all.length + transaction.length + rollupWrites('t', all, nowMs + HOUR_MS).length;
          expect(items).toBeLessThanOrEqual(maxItems);
          const balances = transaction.map((chunk) => `${chunk.tenant}#${chunk.periodStart}`);
          expect(new Set(balances).size).toBe(balances.length);
          for (const chunk of transaction) {
            expect(chunk.entries.length).toBeGreaterThan(0);
            expect(chunk.amount).toBe(chunk.entries.reduce((sum, entry) => sum + entry.amount, 0));
          }
          seen.push(...all.map((entry) => entry.eventId));
        }
        expect(seen.sort()).toEqual(entries.map((entry) => entry.eventId).sort());
      }),
    );
  });
});

describe('rollupsOf', () => {
  it('sums every entry once into its tenant and UTC hour, per operation, and the total equals the entries', () => {
    fc.assert(
      fc.property(fc.array(entryArb, { maxLength: 200 }), (generated) => {
        const raw = generated.map(({ atMs, ...entry }) => (atMs === undefined ? entry : { ...entry, atMs }));
        const nowMs = BASE_MS;
        const rollups = rollupsOf(raw, nowMs);
        const ids = rollups.map((rollup) => `${rollup.tenant}#${rollup.hour}`);
        expect(new Set(ids).size).toBe(ids.length);
        expect(rollups.reduce((sum, rollup) => sum + rollup.units, 0)).toBe(raw.reduce((sum, entry) => sum + entry.amount, 0));
        expect(rollups.reduce((sum, rollup) => sum + rollup.entries, 0)).toBe(raw.length);
        for (const rollup of rollups) {
          const mine = raw.filter(
            (entry) => entry.tenant === rollup.tenant && hourOf(('atMs' in entry ? entry.atMs : undefined) ?? nowMs) === rollup.hour,
          );
          expect(rollup.units).toBe(mine.reduce((sum, entry) => sum + entry.amount, 0));
          expect([...rollup.byOperation.values()].reduce((sum, units) => sum + units, 0)).toBe(rollup.units);
        }
      }),
    );
  });

  it('writes one ADD per rollup in its UTC month partition, and one per operation of it in an item of its own', () => {
    const [rollup] = rollupsOf(
      [
        { tenant: 'a', periodStart: 'p', eventId: 'e', amount: 7, operation: 'getA', atMs: Date.UTC(2026, 11, 1, 0, 30) },
        { tenant: 'a', periodStart: 'p', eventId: 'f', amount: 2, operation: 'getB', atMs: Date.UTC(2026, 11, 1, 0, 40) },
      ],
      0,
    );
    const [hour, ...operations] = rollupUpdates('t_ledger', rollup!).map((item) => item.Update!);
    expect(hour?.Key).toEqual({ pk: { S: 'tenant#a#rollup#2026-12' }, sk: { S: 'hour#2026-12-01T00' } });
    expect(hour?.UpdateExpression).toBe('ADD units :units, entries :entries');
    expect(hour?.ExpressionAttributeValues).toEqual({ ':units': { N: '9' }, ':entries': { N: '2' } });
    expect(operations.map((update) => [update.Key?.['sk'], update.UpdateExpression, update.ExpressionAttributeValues])).toEqual([
      [{ S: 'hour#2026-12-01T00#op#getA' }, 'ADD units :units', { ':units': { N: '7' } }],
      [{ S: 'hour#2026-12-01T00#op#getB' }, 'ADD units :units', { ':units': { N: '2' } }],
    ]);
  });

  it('keeps every update small however many operations a batch names (client-chosen names must not outgrow an item)', () => {
    const entries = Array.from({ length: 500 }, (_, index) => ({
      tenant: 'a',
      periodStart: 'p',
      eventId: `e${index}`,
      amount: 1,
      operation: `op_${'x'.repeat(100)}_${index}`,
      atMs: BASE_MS,
    }));
    const writes = rollupWrites('t', entries, BASE_MS);
    expect(writes).toHaveLength(1 + 500 + 1);
    for (const write of writes) expect(JSON.stringify(write).length).toBeLessThan(1_000);
  });
});
