/**
 * The cost conformance table (test/fixtures/cost-conformance/cases.yaml) on the pricer: each case priced by the
 * compiled formula and by the reference engine (graphql-query-complexity), and quoted; a refusal is the same code
 * on all three. Where tollgate's number differs from another implementation's, the table says by whom and why.
 */
import { buildSchema, parse, validate } from 'graphql';
import { describe, expect, it } from 'vitest';
import { PricingError, Pricer, engineCost, quoteOperation } from '../../../src/graphql/index.js';
import { CONFORMANCE_CASES, caseSdl, type ConformanceCase } from '../../fixtures/cost-conformance/index.js';

function outcome(run: () => number): number | string {
  try {
    return run();
  } catch (error) {
    if (error instanceof PricingError) return error.code;
    const code = (error as { extensions?: { code?: unknown } }).extensions?.code;
    if (typeof code === 'string') return code;
    throw error;
  }
}

function priceCase(conformanceCase: ConformanceCase): { compiled: number | string; engine: number | string; quoted: number | string } {
  const schema = buildSchema(caseSdl(conformanceCase));
  const document = parse(conformanceCase.operation);
  expect(validate(schema, document), 'the operation is valid against its schema').toEqual([]);
  const { variables, options } = conformanceCase;
  const pricer = new Pricer(schema, options);
  return {
    compiled: outcome(() => pricer.price({ document, variables }).cost),
    engine: outcome(() => engineCost({ model: pricer.model, document, variables, operationName: undefined })),
    quoted: outcome(() => quoteOperation({ pricer: new Pricer(schema, options), query: conformanceCase.operation, variables }).cost),
  };
}

describe('the cost conformance table on the pricer', () => {
  it('has cases for every rule it claims to cover', () => {
    expect(CONFORMANCE_CASES.length).toBeGreaterThanOrEqual(30);
    expect(CONFORMANCE_CASES.filter((row) => row.error !== undefined).length).toBeGreaterThanOrEqual(3);
  });

  it.each(CONFORMANCE_CASES.map((row) => [row.name, row] as const))('%s', (_name, row) => {
    const expected = row.cost ?? row.error;
    const { compiled, engine, quoted } = priceCase(row);
    expect({ compiled, engine }).toEqual({ compiled: expected, engine: expected });
    // a quote answers what a request reserves: at least the minimum cost (1)
    expect(quoted).toBe(typeof expected === 'number' ? Math.max(1, expected) : expected);
    if (row.reference !== undefined) expect(row.reference.cost, "a reference number differs from tollgate's").not.toBe(row.cost);
  });
});
