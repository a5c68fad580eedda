/**
 * `@listSize(requireOneSlicingArgument:)` as the IBM cost spec (§8.2, §8.4) defines it: true by default, an
 * operation passing more than one slicing argument (non-null, after variables and argument defaults) to such a
 * field is refused with COST_SLICING_ARGUMENTS and the field's path; with `false`, the largest value sizes the list.
 */
import { buildSchema, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { COST_DIRECTIVES_SDL, PricingError, Pricer, engineCost, quoteOperation } from '../../../src/graphql/index.js';

const schema = buildSchema(`${COST_DIRECTIVES_SDL}
  type Film { title: String }
  type Query {
    films(first: Int, last: Int): [Film] @listSize(slicingArguments: ["first", "last"])
    anyFilms(first: Int, last: Int): [Film] @listSize(slicingArguments: ["first", "last"], requireOneSlicingArgument: false)
    pagedFilms(first: Int = 10, last: Int): [Film] @listSize(slicingArguments: ["first", "last"])
    nested: Nested
  }
  type Nested { films(first: Int, last: Int): [Film] @listSize(slicingArguments: ["first", "last"]) }
`);

function price(query: string, variables: Record<string, unknown> = {}): number {
  const pricer = new Pricer(schema);
  const document = parse(query);
  const cost = pricer.price({ document, variables }).cost;
  expect(engineCost({ model: pricer.model, document, variables, operationName: undefined })).toBe(cost);
  return cost;
}

function refusal(query: string, variables: Record<string, unknown> = {}): PricingError {
  const pricer = new Pricer(schema);
  const document = parse(query);
  let compiled: unknown;
  let engine: unknown;
  try {
    pricer.price({ document, variables });
  } catch (error) {
    compiled = error;
  }
  try {
    engineCost({ model: pricer.model, document, variables, operationName: undefined });
  } catch (error) {
    engine = error;
  }
  expect(compiled).toBeInstanceOf(PricingError);
  // the reference engine refuses the same operation with the same code
  expect((engine as PricingError | undefined)?.code).toBe((compiled as PricingError).code);
  return compiled as PricingError;
}

describe('requireOneSlicingArgument (default true)', () => {
  it('prices a field given exactly one slicing argument by it', () => {
    expect(price('{ films(first: 3) { title } }')).toBe(3);
    expect(price('{ films(last: 4) { title } }')).toBe(4);
    expect(price('query Q($n: Int) { films(first: 5, last: $n) { title } }', {})).toBe(5);
    expect(price('query Q($n: Int) { films(first: 5, last: $n) { title } }', { n: null })).toBe(5);
  });

  it('refuses two slicing arguments on one field with COST_SLICING_ARGUMENTS and the field path', () => {
    const literal = refusal('{ films(first: 3, last: 5) { title } }');
    expect(literal.code).toBe('COST_SLICING_ARGUMENTS');
    expect(literal.details).toMatchObject({ coordinate: 'Query.films', arguments: ['first', 'last'], path: ['films'] });
    const fromVariables = refusal('query Q($a: Int, $b: Int) { nested { many: films(first: $a, last: $b) { title } } }', { a: 1, b: 2 });
    expect(fromVariables.code).toBe('COST_SLICING_ARGUMENTS');
    expect(fromVariables.details).toMatchObject({ path: ['nested', 'many'] });
  });

  it('counts an argument default as given (§8.2), so a second argument beside it is refused', () => {
    expect(price('{ pagedFilms { title } }')).toBe(10);
    expect(refusal('{ pagedFilms(last: 2) { title } }').code).toBe('COST_SLICING_ARGUMENTS');
  });

  it('refuses a field given none with SLICING_ARGUMENT_REQUIRED', () => {
    expect(refusal('{ films { title } }').code).toBe('SLICING_ARGUMENT_REQUIRED');
  });

  it('prices by the largest slicing argument when requireOneSlicingArgument is false (§8.2)', () => {
    expect(price('{ anyFilms(first: 3, last: 5) { title } }')).toBe(5);
    expect(price('{ anyFilms(first: 7, last: 2) { title } }')).toBe(7);
    // none given and no assumedSize: the default list size
    expect(price('{ anyFilms { title } }')).toBe(10);
  });

  it('a quote refuses what a request refuses, with the same code', () => {
    let refused: unknown;
    try {
      quoteOperation({ pricer: new Pricer(schema), query: '{ films(first: 1, last: 1) { title } }' });
    } catch (error) {
      refused = error;
    }
    expect((refused as { extensions?: Record<string, unknown> } | undefined)?.extensions?.['code']).toBe('COST_SLICING_ARGUMENTS');
  });
});
