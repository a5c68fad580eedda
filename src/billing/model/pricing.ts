/**
 * Pricing of one billing period's usage. Pure, integer money only.
 *
 * Money is in micro-units of the account's currency (1 EUR = 1 000 000
 * micros), usage in cost units. A price is:
 *   baseFeeMicros                       charged every period, usage or not
 *   includedUnits                       units covered by the base fee
 *   tiers [{ upToUnits, unitPriceMicros }]  graduated: the units above the included ones are
 *                                       priced tier by tier; `upToUnits` counts overage units
 *                                       (cumulative, the last tier has none: unbounded)
 * A flat unit price is one unbounded tier. Usage above `includedUnits` is the
 * overage. A negative balance (refunds above reservations, never expected)
 * prices as 0 units.
 */

export interface PriceTier {
  /** Cumulative overage units this tier goes up to (inclusive); absent on the last tier (unbounded). */
  upToUnits?: number;
  /** Price of one unit in this tier, micro-units of the currency. */
  unitPriceMicros: number;
}

export interface PriceSpec {
  /** ISO 4217 code, e.g. `EUR`. */
  currency: string;
  /** Fixed fee per period, micro-units. */
  baseFeeMicros: number;
  /** Units covered by the base fee. */
  includedUnits: number;
  /** Graduated tiers over the overage units, ascending; the last one is unbounded. */
  tiers: PriceTier[];
}

export interface PricedTier {
  /** Overage units priced in this tier. */
  units: number;
  unitPriceMicros: number;
  amountMicros: number;
}

export interface PriceBreakdown {
  currency: string;
  /** Units billed (the period's balance, never below 0). */
  units: number;
  includedUnits: number;
  /** Units above the included ones. */
  overageUnits: number;
  baseFeeMicros: number;
  tiers: PricedTier[];
  /** baseFeeMicros + the tiers' amounts. */
  totalMicros: number;
}

const CURRENCY = /^[A-Z]{3}$/;
const MAX_TIERS = 16;

const isAmount = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;

/**
 * Every problem of a price (empty when valid): integers ≥ 0, a currency code,
 * 1..16 tiers with strictly ascending bounds, only the last one unbounded.
 */
export function priceProblems(price: PriceSpec): string[] {
  const problems: string[] = [];
  if (!CURRENCY.test(price.currency)) problems.push('price.currency must be an ISO 4217 code (3 capital letters)');
  if (!isAmount(price.baseFeeMicros)) problems.push('price.baseFeeMicros must be a safe integer >= 0');
  if (!isAmount(price.includedUnits)) problems.push('price.includedUnits must be a safe integer >= 0');
  if (!Array.isArray(price.tiers) || price.tiers.length === 0 || price.tiers.length > MAX_TIERS) {
    problems.push(`price.tiers must hold 1..${MAX_TIERS} tiers`);
    return problems;
  }
  let previous = 0;
  price.tiers.forEach((tier, index) => {
    const isLast = index === price.tiers.length - 1;
    if (!isAmount(tier.unitPriceMicros)) problems.push(`price.tiers[${index}].unitPriceMicros must be a safe integer >= 0`);
    if (isLast) {
      if (tier.upToUnits !== undefined) problems.push(`price.tiers[${index}] is the last tier and must have no upToUnits`);
    } else if (!isAmount(tier.upToUnits) || tier.upToUnits <= previous) {
      problems.push(`price.tiers[${index}].upToUnits must be an integer above the previous tier's (${previous})`);
    } else {
      previous = tier.upToUnits;
    }
  });
  return problems;
}

/**
 * Prices `units` of usage. Exact: every amount is an integer product checked
 * to stay a safe integer.
 * @throws RangeError when the price is invalid or an amount exceeds 2^53 − 1
 */
export function priceUsage(price: PriceSpec, units: number): PriceBreakdown {
  const problems = priceProblems(price);
  if (problems.length > 0) throw new RangeError(problems.join('; '));
  if (!Number.isSafeInteger(units)) throw new RangeError(`units must be a safe integer, got ${units}`);
  const billed = Math.max(0, units);
  const overageUnits = Math.max(0, billed - price.includedUnits);
  const tiers: PricedTier[] = [];
  let total = price.baseFeeMicros;
  let floor = 0;
  for (const tier of price.tiers) {
    const ceiling = tier.upToUnits ?? Number.POSITIVE_INFINITY;
    const inTier = Math.max(0, Math.min(overageUnits, ceiling) - floor);
    const amountMicros = inTier * tier.unitPriceMicros;
    if (!Number.isSafeInteger(amountMicros)) throw new RangeError('a tier amount exceeds 2^53 - 1 micros');
    tiers.push({ units: inTier, unitPriceMicros: tier.unitPriceMicros, amountMicros });
    total += amountMicros;
    if (!Number.isSafeInteger(total)) throw new RangeError('the total exceeds 2^53 - 1 micros');
    if (tier.upToUnits === undefined) break;
    floor = tier.upToUnits;
  }
  return {
    currency: price.currency,
    units: billed,
    includedUnits: price.includedUnits,
    overageUnits,
    baseFeeMicros: price.baseFeeMicros,
    tiers,
    totalMicros: total,
  };
}
