import { buildSchema } from 'graphql';
import { describe, expect, it } from 'vitest';
import { applyCostFile, parseCostFile } from '../../../src/gateway/index.js';
import { Pricer, quoteOperation } from '../../../src/graphql/index.js';

/** A schema with no cost directives at all, as introspection gives it. */
const plain = buildSchema(`
  type Author { name: String! }
  type Book { title: String!  author: Author! }
  input BookFilter { title: String }
  type Query { books(first: Int, filter: BookFilter): [Book!]!  author(name: String!): Author }
`);

const costOf = (schema: ReturnType<typeof applyCostFile>, query: string): number =>
  quoteOperation({ pricer: new Pricer(schema), query }).cost ?? Number.NaN;

describe('a cost file', () => {
  it('prices a schema without directives by coordinates: field weights, type weights and list sizes', () => {
    // given
    const costs = parseCostFile(
      `
Query.books:
  listSize: { slicingArguments: [first], assumedSize: 50, requireOneSlicingArgument: false }
Author:
  weight: 3
Book.title:
  weight: 2
`,
      plain,
    );
    // when
    const schema = applyCostFile(plain, costs);
    // then each of 10 books costs 1 (an object) + 2 (its title) + 3 (its author)
    expect(costOf(schema, '{ books(first: 10) { title author { name } } }')).toBe(10 * (1 + 2 + 3));
    // and without a slicing argument the assumed size applies
    expect(costOf(schema, '{ books { title } }')).toBe(50 * (1 + 2));
    // and the unannotated schema prices the same query by the defaults only (10 items of 1)
    expect(costOf(applyCostFile(plain, new Map()), '{ books(first: 10) { title author { name } } }')).toBe(10 * (1 + 1));
  });

  it('lists every problem with its coordinate, and refuses the file whole', () => {
    const file = `
Query.bookz: { weight: 1 }
Nope: { weight: 1 }
BookFilter: { weight: 1 }
Book.title: { weight: -1, color: red }
Query.books: { listSize: { slicingArguments: [filter, last], assumedSize: 1.5 } }
Query.author: { listSize: { assumedSize: 2 } }
"Query.": { weight: 1 }
`;
    expect(() => parseCostFile(file, plain)).toThrow(
      expect.objectContaining({
        code: 'INVALID_INPUT',
        details: {
          problems: [
            'Query.bookz: Query has no field bookz',
            'Nope: the schema has no output type Nope',
            'BookFilter: the schema has no output type BookFilter',
            'Book.title.color is not a cost setting (weight, listSize)',
            'Book.title.weight must be an integer in 0..1000000',
            'Query.books.listSize.slicingArguments: filter is not an Int',
            'Query.books.listSize.slicingArguments: Query.books has no argument last',
            'Query.books.listSize.assumedSize must be an integer in 0..1000000',
            'Query.author.listSize: the field does not return a list',
            'Query.: not a schema coordinate (Type or Type.field)',
          ],
        },
      }) as Error,
    );
  });

  it('refuses a file that is not YAML or not a map', () => {
    expect(() => parseCostFile('a: [', plain)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }) as Error);
    expect(() => parseCostFile('- Query.books', plain)).toThrow('it must map schema coordinates to costs');
  });
});
