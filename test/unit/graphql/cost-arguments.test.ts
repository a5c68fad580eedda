/**
 * `@cost` on arguments and input fields (IBM cost spec §5.3.2.2): paid once per field when written in the query,
 * from literals or variables, in the requested cost and in the actual cost measured from the result.
 */
import { buildSchema, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { COST_DIRECTIVES_SDL, Pricer, engineCost, measureActualCost } from '../../../src/graphql/index.js';

const schema = buildSchema(`${COST_DIRECTIVES_SDL}
  input Filter { exact: Boolean @cost(weight: 7) tags: [Tag!] }
  input Tag { name: String @cost(weight: 2) }
  type Item { id: ID }
  type Query { items(first: Int = 3, filter: Filter @cost(weight: 4)): [Item] @listSize(slicingArguments: ["first"]) }
`);

function priced(query: string, variables: Record<string, unknown>, options = {}): { cost: number; actual: (data: unknown) => number } {
  const pricer = new Pricer(schema, options);
  const document = parse(query);
  const { cost, plan } = pricer.price({ document, variables });
  expect(engineCost({ model: pricer.model, document, variables, operationName: undefined })).toBe(cost);
  return { cost, actual: (data) => measureActualCost(plan, data, variables) };
}

describe('argument and input field weights', () => {
  it('adds an argument and the input fields given in it once per field, not per item', () => {
    // 3 items × 1, + filter 4 + exact 7 + 2 tags × 2
    const literal = priced('{ items(filter: { exact: true, tags: [{ name: "a" }, { name: "b" }] }) { id } }', {});
    expect(literal.cost).toBe(3 + 4 + 7 + 2 * 2);
    const fromVariables = priced('query Q($f: Filter) { items(filter: $f) { id } }', {
      f: { exact: true, tags: [{ name: 'a' }, { name: 'b' }] },
    });
    expect(fromVariables.cost).toBe(literal.cost);
  });

  it('costs nothing for an argument left out or null, and counts input objects with inputObjectWeight', () => {
    expect(priced('{ items { id } }', {}).cost).toBe(3);
    expect(priced('query Q($f: Filter) { items(filter: $f) { id } }', { f: null }).cost).toBe(3);
    // filter 4 (its own weight replaces the input object's) + 2 Tag objects × (1 + 2)
    expect(priced('{ items(filter: { tags: [{ name: "a" }, { name: "b" }] }) { id } }', {}, { inputObjectWeight: 1 }).cost).toBe(
      3 + 4 + 2 * 3,
    );
  });

  it('counts the arguments of each returned field in the actual cost', () => {
    const { cost, actual } = priced('query Q($f: Filter) { items(first: 5, filter: $f) { id } }', { f: { exact: false } });
    expect(cost).toBe(5 + 4 + 7);
    // two of five items came back: 2 + the arguments, once
    expect(actual({ items: [{ id: '1' }, { id: '2' }] })).toBe(2 + 4 + 7);
    // the field was not returned at all: nothing
    expect(actual({})).toBe(0);
  });
});
