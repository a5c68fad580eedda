/** The schema and query of `bench/gateway.ts`, shared with its servers. */
export const GATEWAY_SDL = `
  type Author { name: String! }
  type Book { title: String!  author: Author! @cost(weight: 2) }
  type Query { books(first: Int!): [Book!]! @listSize(slicingArguments: ["first"]) }`;

/** 10 books with their authors: 10 × (1 + 2) = 30 units, every list full (nothing to settle). */
export const GATEWAY_QUERY = '{ books(first: 10) { title author { name } } }';
