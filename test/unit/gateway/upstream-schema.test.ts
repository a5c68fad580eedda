import { describe, expect, it } from 'vitest';
import { upstreamSchemaFromSdl } from '../../../src/gateway/index.js';
import { COST_DIRECTIVES_SDL } from '../../../src/graphql/index.js';

describe('the upstream schema from its SDL', () => {
  it('declares the cost directives when the SDL does not, and keeps the ones it declares', () => {
    const plain = upstreamSchemaFromSdl('type Query { books(first: Int!): [String!]! @listSize(slicingArguments: ["first"]) }');
    expect(plain.getDirective('cost')).toBeDefined();
    const books = plain.getQueryType()?.getFields()['books'];
    expect(books?.astNode?.directives?.map((directive) => directive.name.value)).toEqual(['listSize']);
    const declared = upstreamSchemaFromSdl(`${COST_DIRECTIVES_SDL}\ntype Query { n: Int @cost(weight: 3) }`);
    expect(declared.getDirective('cost')).toBeDefined();
  });

  it.each([
    ['does not parse', 'type Query {'],
    ['uses an undeclared type', 'type Query { book: Book }'],
  ])('refuses an SDL that %s with INVALID_INPUT', (_, sdl) => {
    expect(() => upstreamSchemaFromSdl(sdl)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }) as Error);
  });
});
