/**
 * Pricing on the demo schema: exact costs of connections, nested lists,
 * unions, fragments, variables and skip/include; every known bypass refused;
 * the actual cost from returned data; the static guards with fragments expanded.
 */
import { GraphQLError, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import {
  PricingError,
  Pricer,
  STATIC_LIMIT_DEFAULTS,
  checkStaticLimits,
  engineCost,
  measureActualCost,
  measureDocument,
  quoteOperation,
} from '../../../src/graphql/index.js';
import { DemoStore, createDemoSchema } from '../../../src/graphql/demo/index.js';

const schema = createDemoSchema({
  store: new DemoStore(),
  version: 't',
  deciderTimeMs: () => Promise.resolve(0),
  clock: { nowMs: () => 0 },
});

function price(query: string, variables: Record<string, unknown> = {}, operationName?: string): number {
  const pricer = new Pricer(schema);
  const document = parse(query);
  const compiled = pricer.price({ document, variables, operationName }).cost;
  // the compiled formula and graphql-query-complexity agree on every case here
  expect(engineCost({ model: pricer.model, document, variables, operationName })).toBe(compiled);
  return compiled;
}

function pricingError(query: string, variables: Record<string, unknown> = {}): PricingError {
  try {
    new Pricer(schema).price({ document: parse(query), variables });
  } catch (error) {
    if (error instanceof PricingError) return error;
    throw error;
  }
  throw new Error('priced without error');
}

describe('pricing', () => {
  it('charges a connection 1 + first × (edge + node) and leaves pageInfo and scalars free', () => {
    expect(price('{ products(first: 50) { edges { node { name } } pageInfo { hasNextPage } totalCount } }')).toBe(1 + 50 * 2);
  });

  it('uses the argument default when first is omitted, and the variable when given', () => {
    expect(price('{ products { nodes { id } } }')).toBe(1 + 20 * 1);
    expect(price('query Q($n: Int) { products(first: $n) { nodes { id } } }', { n: 7 })).toBe(1 + 7);
    expect(price('query Q($n: Int = 3) { products(first: $n) { nodes { id } } }')).toBe(1 + 3);
    // an explicit null means "not given" (the argument default is not applied to an explicit null), and
    // requireOneSlicingArgument (true by default, IBM cost spec §8.4) refuses a field given no slicing argument
    expect(pricingError('query Q($n: Int) { products(first: $n) { nodes { id } } }', { n: null }).code).toBe('SLICING_ARGUMENT_REQUIRED');
  });

  it('multiplies nested lists', () => {
    // products: 1 + 10 × (node 1 + reviews 4 × 1 + related 2 × (1 + reviews 3 × 1))
    expect(
      price('{ products(first: 10) { nodes { reviews(first: 4) { rating } related(first: 2) { reviews(first: 3) { body } } } } }'),
    ).toBe(1 + 10 * (1 + 4 + 2 * (1 + 3)));
  });

  it('prices every alias: aliasing multiplies the cost, it does not hide it', () => {
    const one = price('{ products(first: 100) { nodes { id } } }');
    expect(
      price(
        '{ a: products(first: 100) { nodes { id } } b: products(first: 100) { nodes { id } } c: products(first: 100) { nodes { id } } }',
      ),
    ).toBe(3 * one);
  });

  it('prices a fragment at each spread', () => {
    const query = `
      fragment P on Product { reviews(first: 5) { rating } }
      { products(first: 10) { nodes { ...P } } product(id: "p-0001") { ...P } }`;
    expect(price(query)).toBe(1 + 10 * (1 + 5) + (1 + 5));
  });

  it('takes the most expensive member of a union', () => {
    const query = '{ search(text: "a", first: 10) { ... on Product { reviews(first: 5) { rating } } ... on Category { name } } }';
    expect(price(query)).toBe(10 * (1 + 5));
  });

  it('skips what @skip / @include leave out, per the variables', () => {
    const query = 'query Q($all: Boolean!) { products(first: 10) { nodes { id reviews(first: 5) @include(if: $all) { rating } } } }';
    expect(price(query, { all: true })).toBe(1 + 10 * (1 + 5));
    expect(price(query, { all: false })).toBe(1 + 10);
  });

  it('charges the mutation base, @cost weights and deferrable mutations', () => {
    expect(price('mutation { cancelOrder(id: "o-1") { id } }')).toBe(10);
    expect(price('mutation { placeOrder(items: []) { id items(first: 3) { quantity } } }')).toBe(20 + 3);
    expect(price('mutation { exportOrdersReport { id } }')).toBe(500);
    const pricer = new Pricer(schema);
    expect(pricer.plan({ document: parse('mutation { exportOrdersReport { id } }') }).plan.isDeferrable).toBe(true);
    expect(pricer.plan({ document: parse('mutation { exportOrdersReport { id } cancelOrder(id: "x") { id } }') }).plan.isDeferrable).toBe(
      false,
    );
  });

  it('prices only the named operation of a multi-operation document', () => {
    const query = 'query A { products(first: 5) { nodes { id } } } query B { products(first: 50) { nodes { id } } }';
    expect(price(query, {}, 'A')).toBe(6);
    expect(price(query, {}, 'B')).toBe(51);
  });

  it('caches the compiled formula per document and by query string', () => {
    const pricer = new Pricer(schema, { maxCachedDocuments: 2 });
    const query = 'query Q($n: Int) { products(first: $n) { nodes { id } } }';
    const first = pricer.plan({ document: parse(query), source: query });
    // a re-parsed document with the same text reuses the formula
    expect(pricer.plan({ document: parse(query), source: query }).plan).toBe(first.plan);
    expect(pricer.price({ document: parse(query), source: query, variables: { n: 9 } }).cost).toBe(10);
    pricer.plan({ document: parse('{ me { tenant } }'), source: '{ me { tenant } }' });
    pricer.plan({ document: parse('{ categories { id } }'), source: '{ categories { id } }' });
    expect(pricer.cachedDocuments).toBe(2);
  });
});

describe('bypass attempts are refused', () => {
  it.each([
    [
      'a negative first beside an expensive sibling',
      '{ a: products(first: -1000000) { nodes { id } } b: products(first: 1000) { nodes { id } } }',
      {},
    ],
    ['a huge first', '{ products(first: 2147483647) { nodes { id } } }', {}],
    ['a huge first in a variable', 'query Q($n: Int) { products(first: $n) { nodes { id } } }', { n: 1_000_001 }],
    ['a negative first in a variable', 'query Q($n: Int) { products(first: $n) { nodes { id } } }', { n: -1 }],
    ['a fractional first in a variable', 'query Q($n: Int) { products(first: $n) { nodes { id } } }', { n: 2.5 }],
    ['a string first in a variable', 'query Q($n: Int) { products(first: $n) { nodes { id } } }', { n: '10' }],
    ['a negative nested first', '{ products(first: 10) { nodes { reviews(first: -5) { rating } } } }', {}],
  ])('%s → INVALID_SLICING_ARGUMENT', (_name, query, variables) => {
    expect(pricingError(query, variables).code).toBe('INVALID_SLICING_ARGUMENT');
  });

  it('caps a cost that would overflow at 2^53 - 1 instead of wrapping or going to Infinity', () => {
    const nested = `{ products(first: 1000) { nodes { ${'related(first: 1000) { '.repeat(8)}id${' }'.repeat(8)} } } }`;
    expect(price(nested)).toBe(Number.MAX_SAFE_INTEGER);
  });
});

describe('actual cost', () => {
  const pricer = new Pricer(schema);
  const planOf = (query: string) => pricer.plan({ document: parse(query) }).plan;

  it('counts what came back: 3 of 50 requested', () => {
    const plan = planOf('{ products(first: 50) { edges { node { name } } pageInfo { hasNextPage } } }');
    const data = {
      products: { edges: [{ node: { name: 'a' } }, { node: { name: 'b' } }, { node: { name: 'c' } }], pageInfo: { hasNextPage: false } },
    };
    expect(measureActualCost(plan, data, {})).toBe(1 + 3 * 2);
  });

  it('equals the estimate when every list is full, per item for nested lists', () => {
    const query = '{ products(first: 2) { nodes { reviews(first: 2) { rating } } } }';
    const plan = planOf(query);
    const full = { products: { nodes: [{ reviews: [{ rating: 1 }, { rating: 2 }] }, { reviews: [{ rating: 3 }, { rating: 4 }] }] } };
    expect(measureActualCost(plan, full, {})).toBe(price(query));
    const uneven = { products: { nodes: [{ reviews: [{ rating: 1 }] }, { reviews: [] }] } };
    expect(measureActualCost(plan, uneven, {})).toBe(1 + (1 + 1) + (1 + 0));
  });

  it('counts an overrun when a resolver returns more than requested', () => {
    const plan = planOf('{ categories { id } }');
    const data = { categories: Array.from({ length: 9 }, (_, i) => ({ id: String(i) })) };
    expect(measureActualCost(plan, data, {})).toBe(9);
    expect(price('{ categories { id } }')).toBe(4);
  });

  it('is 0 for no data', () => {
    expect(measureActualCost(planOf('{ categories { id } }'), null, {})).toBe(0);
  });
});

describe('static guards', () => {
  it('measures depth, aliases and nodes with fragments expanded', () => {
    const shape = measureDocument(parse('fragment F on Product { a: id b: name } { products { nodes { ...F ...F } } }')).get(undefined);
    expect(shape).toEqual({ depth: 3, aliases: 4, nodes: 2 + 2 * (1 + 2) });
  });

  it('measures a document that explodes when expanded without expanding it (saturating)', () => {
    // F0 spreads F1 twice, F1 spreads F2 twice, ... 2^40 nodes when expanded
    const fragments = Array.from({ length: 40 }, (_, i) => `fragment F${i} on Product { ...F${i + 1} ...F${i + 1} }`).join('\n');
    const document = parse(`${fragments}\nfragment F40 on Product { id }\n{ product(id: "x") { ...F0 } }`);
    const errors = checkStaticLimits(document, STATIC_LIMIT_DEFAULTS);
    expect(errors.map((error) => error.extensions['code'])).toEqual(['NODE_LIMIT_EXCEEDED']);
  });

  it('refuses deep nesting and alias floods with their codes', () => {
    const deep = parse(`{ product(id: "x") { ${'related { '.repeat(20)}id${' }'.repeat(20)} } }`);
    expect(checkStaticLimits(deep, STATIC_LIMIT_DEFAULTS).map((error) => error.extensions['code'])).toEqual(['DEPTH_LIMIT_EXCEEDED']);
    const aliases = parse(`{ ${Array.from({ length: 31 }, (_, i) => `a${i}: me { tenant }`).join(' ')} }`);
    expect(checkStaticLimits(aliases, STATIC_LIMIT_DEFAULTS).map((error) => error.extensions['code'])).toEqual(['ALIAS_LIMIT_EXCEEDED']);
  });
});

describe('quote', () => {
  const pricer = new Pricer(schema);

  it('lists each field with its size and cost', () => {
    const quote = quoteOperation({ pricer, query: 'query Q($n: Int) { products(first: $n) { nodes { name } } }', variables: { n: 4 } });
    expect(quote).toMatchObject({ operationName: 'Q', operationType: 'query', cost: 5, isDeferrable: false });
    expect(quote.lines).toEqual([
      { path: 'products', coordinate: 'Query.products', weight: 1, size: 4, cost: 5 },
      { path: 'products.nodes', coordinate: 'ProductConnection.nodes', weight: 1, size: 1, cost: 1 },
      { path: 'products.nodes.name', coordinate: 'Product.name', weight: 0, size: 1, cost: 0 },
    ]);
  });

  it.each([
    ['{ products(first: -1) { nodes { id } } }', 'INVALID_SLICING_ARGUMENT'],
    ['{ nope }', 'GRAPHQL_VALIDATION_FAILED'],
    ['{ products(', 'GRAPHQL_PARSE_FAILED'],
    [`{ ${'me { tenant } '.repeat(2_000)} }`, 'GRAPHQL_PARSE_FAILED'],
  ])('refuses %s with its code', (query, code) => {
    let caught: unknown;
    try {
      quoteOperation({ pricer, query });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(GraphQLError);
    expect((caught as GraphQLError).extensions['code']).toBe(code);
  });
});
