/**
 * The mutation base: by default 10 per root mutation field without `@cost` (`mutationWeight`); with
 * `mutationWeight: null, mutationOperationWeight: 10`, once per mutation operation as Apollo Router and Hive Gateway
 * charge it, in the requested cost, the quote and the actual cost.
 */
import { buildSchema, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { COST_DIRECTIVES_SDL, Pricer, engineCost, measureActualCost, quoteOperation } from '../../../src/graphql/index.js';

const schema = buildSchema(`${COST_DIRECTIVES_SDL}
  type Order { id: ID }
  type Query { order: Order }
  type Mutation { place: Order  cancel: Order @cost(weight: 3) }
`);
const APOLLO = { mutationWeight: null, mutationOperationWeight: 10 };
const TWO = 'mutation { place { id } cancel { id } }';

function price(query: string, options = {}): number {
  const pricer = new Pricer(schema, options);
  const document = parse(query);
  const cost = pricer.price({ document }).cost;
  expect(engineCost({ model: pricer.model, document, variables: {}, operationName: undefined })).toBe(cost);
  expect(quoteOperation({ pricer: new Pricer(schema, options), query }).cost).toBe(Math.max(1, cost));
  return cost;
}

describe('the mutation base', () => {
  it('is 10 per root mutation field without @cost by default', () => {
    expect(price(TWO)).toBe(10 + 3);
    expect(price('{ order { id } }')).toBe(1);
  });

  it('is paid once per mutation operation with mutationOperationWeight, the root fields weighing as their types', () => {
    expect(price(TWO, APOLLO)).toBe(10 + 1 + 3);
    expect(price('mutation { place { id } }', APOLLO)).toBe(10 + 1);
    // queries pay no base
    expect(price('{ order { id } }', APOLLO)).toBe(1);
  });

  it('is in the actual cost once the mutation ran, and not when it returned nothing', () => {
    const pricer = new Pricer(schema, APOLLO);
    const { plan } = pricer.price({ document: parse(TWO) });
    expect(measureActualCost(plan, { place: { id: '1' }, cancel: { id: '2' } }, {})).toBe(10 + 1 + 3);
    expect(measureActualCost(plan, null, {})).toBe(0);
  });
});
