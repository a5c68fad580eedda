/** What the GraphQL benchmark's server and load generator agree on. */

/** The API key every bench client sends (the tollgate server's key store holds only its hash). */
export const BENCH_API_KEY = `tg_${'b'.repeat(43)}`;

/** A realistic catalog read: a full page of 10 products, each with a full nested list of 3 (cost 1 + 10 × (1 + 3) = 41; every list full, so nothing to settle). */
export const BENCH_QUERY = 'query Catalog($n: Int) { products(first: $n) { nodes { id name priceCents related(first: 3) { id } } } }';
export const BENCH_VARIABLES = { n: 10 };
