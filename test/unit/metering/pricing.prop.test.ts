import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { priceProblems, priceUsage, type PriceSpec } from '../../../src/billing/index.js';

const PRICE: PriceSpec = {
  currency: 'EUR',
  baseFeeMicros: 10_000_000,
  includedUnits: 1_000,
  tiers: [{ upToUnits: 500, unitPriceMicros: 2_000 }, { upToUnits: 2_500, unitPriceMicros: 1_500 }, { unitPriceMicros: 1_000 }],
};

describe('priceUsage', () => {
  it('charges only the base fee up to the included units', () => {
    expect(priceUsage(PRICE, 0)).toMatchObject({ units: 0, overageUnits: 0, totalMicros: 10_000_000 });
    expect(priceUsage(PRICE, 1_000)).toMatchObject({ overageUnits: 0, totalMicros: 10_000_000 });
  });

  it('prices the overage tier by tier (graduated)', () => {
    // 4 000 units: 3 000 overage = 500 at 2 000 + 2 000 at 1 500 + 500 at 1 000
    const priced = priceUsage(PRICE, 4_000);
    expect(priced.overageUnits).toBe(3_000);
    expect(priced.tiers).toEqual([
      { units: 500, unitPriceMicros: 2_000, amountMicros: 1_000_000 },
      { units: 2_000, unitPriceMicros: 1_500, amountMicros: 3_000_000 },
      { units: 500, unitPriceMicros: 1_000, amountMicros: 500_000 },
    ]);
    expect(priced.totalMicros).toBe(14_500_000);
  });

  it('a flat unit price is one unbounded tier; a negative balance prices as zero units', () => {
    const flat: PriceSpec = { currency: 'USD', baseFeeMicros: 0, includedUnits: 0, tiers: [{ unitPriceMicros: 7 }] };
    expect(priceUsage(flat, 1_234).totalMicros).toBe(8_638);
    expect(priceUsage(flat, -5)).toMatchObject({ units: 0, totalMicros: 0 });
  });

  it('names every problem of an invalid price', () => {
    expect(
      priceProblems({
        currency: 'eur',
        baseFeeMicros: -1,
        includedUnits: 1.5,
        tiers: [{ upToUnits: 10, unitPriceMicros: 1 }, { upToUnits: 5, unitPriceMicros: 1 }, { unitPriceMicros: 1 }],
      }),
    ).toEqual([
      'price.currency must be an ISO 4217 code (3 capital letters)',
      'price.baseFeeMicros must be a safe integer >= 0',
      'price.includedUnits must be a safe integer >= 0',
      "price.tiers[1].upToUnits must be an integer above the previous tier's (10)",
    ]);
    expect(priceProblems({ ...PRICE, tiers: [{ upToUnits: 3, unitPriceMicros: 1 }] })).toEqual([
      'price.tiers[0] is the last tier and must have no upToUnits',
    ]);
    expect(() => priceUsage({ ...PRICE, tiers: [] }, 1)).toThrow(RangeError);
  });

  const prices = fc
    .record({
      baseFeeMicros: fc.integer({ min: 0, max: 1e9 }),
      includedUnits: fc.integer({ min: 0, max: 1e6 }),
      bounds: fc.uniqueArray(fc.integer({ min: 1, max: 1e6 }), { maxLength: 5 }),
      unitPrices: fc.array(fc.integer({ min: 0, max: 10_000 }), { minLength: 6, maxLength: 6 }),
    })
    .map(({ baseFeeMicros, includedUnits, bounds, unitPrices }): PriceSpec => {
      const sorted = [...bounds].sort((a, b) => a - b);
      return {
        currency: 'EUR',
        baseFeeMicros,
        includedUnits,
        tiers: [
          ...sorted.map((upToUnits, i) => ({ upToUnits, unitPriceMicros: unitPrices[i] ?? 0 })),
          { unitPriceMicros: unitPrices[5] ?? 0 },
        ],
      };
    });

  it('property: tiers split the overage exactly, the total is the base fee plus the tier amounts, and more usage never costs less', () => {
    fc.assert(
      fc.property(prices, fc.integer({ min: 0, max: 1e8 }), fc.integer({ min: 0, max: 1e6 }), (price, units, more) => {
        const priced = priceUsage(price, units);
        expect(priced.tiers.reduce((sum, tier) => sum + tier.units, 0)).toBe(Math.max(0, units - price.includedUnits));
        expect(priced.totalMicros).toBe(price.baseFeeMicros + priced.tiers.reduce((sum, tier) => sum + tier.amountMicros, 0));
        for (const tier of priced.tiers) expect(Number.isSafeInteger(tier.amountMicros)).toBe(true);
        expect(priceUsage(price, units + more).totalMicros).toBeGreaterThanOrEqual(priced.totalMicros);
      }),
    );
  });

  it('property: with one flat tier the price is base fee + overage × unit price', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1e6 }),
        fc.integer({ min: 0, max: 1e6 }),
        fc.integer({ min: 0, max: 1e5 }),
        (included, units, unit) => {
          const price: PriceSpec = { currency: 'EUR', baseFeeMicros: 3, includedUnits: included, tiers: [{ unitPriceMicros: unit }] };
          expect(priceUsage(price, units).totalMicros).toBe(3 + Math.max(0, units - included) * unit);
        },
      ),
    );
  });
});
