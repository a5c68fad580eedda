/**
 * The demo API served by `npm start`: its resolvers over a `DemoStore`, with
 * the type definitions of `type-defs.ts`. Orders, carts and exports belong to
 * the caller's tenant (from the API key, never from an argument). Resolvers
 * keep GraphQL's `(parent, args, context)` signature.
 */
import { GraphQLError, GraphQLScalarType, Kind, valueFromASTUntyped } from 'graphql';
import { createSchema } from 'graphql-yoga';
import { readJob, type JobReader } from '../../jobs/index.js';
import type { TollgateContext } from '../plugins/use-tollgate.js';
import type { DemoStore, Order, Product } from './data.js';
import { DEMO_TYPE_DEFS } from './type-defs.js';

/** What the demo schema reads. */
export interface DemoSchemaDeps {
  store: DemoStore;
  version: string;
  /** Redis TIME, for the `status` field. */
  deciderTimeMs: () => Promise<number>;
  clock: { nowMs(): number };
  /** Deferred jobs, for the `job(id)` field (without it the field answers JOBS_UNAVAILABLE). */
  jobs?: JobReader;
}

const SafeInt = new GraphQLScalarType({
  name: 'SafeInt',
  serialize: (value) => {
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw new GraphQLError('SafeInt must be a safe integer');
    return value;
  },
  parseValue: (value) => {
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw new GraphQLError('SafeInt must be a safe integer');
    return value;
  },
  parseLiteral: (ast) => {
    if (ast.kind !== Kind.INT || !Number.isSafeInteger(Number(ast.value))) throw new GraphQLError('SafeInt must be a safe integer');
    return Number(ast.value);
  },
});

const JSONObject = new GraphQLScalarType({
  name: 'JSONObject',
  serialize: (value) => value,
  parseValue: (value) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new GraphQLError('JSONObject must be an object');
    return value;
  },
  parseLiteral: (ast, variables) => {
    if (ast.kind !== Kind.OBJECT) throw new GraphQLError('JSONObject must be an object');
    return valueFromASTUntyped(ast, variables);
  },
});

type Context = TollgateContext;

/** A connection's page arguments. */
interface PageArgs {
  first: number;
  after?: string | null;
}

function tollgateOf(context: Context): NonNullable<TollgateContext['tollgate']> {
  if (context.tollgate === undefined) throw new GraphQLError('not identified', { extensions: { code: 'UNIDENTIFIED' } });
  return context.tollgate;
}

const cursor = (index: number): string => Buffer.from(String(index), 'utf8').toString('base64url');

/** A page of a list: `first` items after the opaque cursor `after` (the index, base64url). */
function page<T>(items: T[], { first, after }: PageArgs) {
  let start = 0;
  if (after !== null && after !== undefined) {
    const index = Number(Buffer.from(after, 'base64url').toString('utf8'));
    start = Number.isSafeInteger(index) && index >= 0 ? index + 1 : 0;
  }
  const slice = items.slice(start, start + Math.max(0, first));
  const edges = slice.map((node, offset) => ({ cursor: cursor(start + offset), node }));
  return {
    edges,
    nodes: slice,
    pageInfo: { hasNextPage: start + slice.length < items.length, endCursor: edges.at(-1)?.cursor ?? null },
    totalCount: items.length,
  };
}

function queryResolvers(deps: DemoSchemaDeps) {
  const { store } = deps;
  return {
    status: async () => ({ version: deps.version, deciderTimeMs: String(await deps.deciderTimeMs()) }),
    me: (_root: unknown, _args: unknown, context: Context) => {
      const { identity, plan } = tollgateOf(context);
      return { tenant: identity.tenant, keyId: identity.keyId, plan: plan.id };
    },
    products: (_root: unknown, args: PageArgs & { category?: string | null }) => {
      store.touch();
      return page(store.productsIn(args.category), args);
    },
    product: (_root: unknown, args: { id: string }) => {
      store.touch();
      return store.product(args.id) ?? null;
    },
    categories: () => {
      store.touch();
      return store.categories;
    },
    orders: (_root: unknown, args: PageArgs, context: Context) => {
      store.touch();
      return page(store.ordersOf(tollgateOf(context).identity.tenant), args);
    },
    order: (_root: unknown, args: { id: string }, context: Context) => {
      store.touch();
      return store.order(tollgateOf(context).identity.tenant, args.id) ?? null;
    },
    search: (_root: unknown, args: { text: string; first: number }) => {
      store.touch();
      const text = args.text.toLowerCase();
      const hits = [
        ...store.categories.filter((category) => category.name.toLowerCase().includes(text)),
        ...store.products.filter((product) => product.name.toLowerCase().includes(text)),
      ];
      return hits.slice(0, Math.max(0, args.first));
    },
    node: (_root: unknown, args: { id: string }, context: Context) => {
      store.touch();
      return store.product(args.id) ?? store.category(args.id) ?? store.order(tollgateOf(context).identity.tenant, args.id) ?? null;
    },
    quote: (
      _root: unknown,
      args: { query: string; variables?: Record<string, unknown> | null; operationName?: string | null },
      context: Context,
    ) => tollgateOf(context).quote(args),
    job: async (_root: unknown, args: { id: string }, context: Context) => {
      const { identity } = tollgateOf(context);
      if (deps.jobs === undefined) throw new GraphQLError('deferred jobs are not available', { extensions: { code: 'JOBS_UNAVAILABLE' } });
      return (await readJob(deps.jobs, identity.tenant, args.id)) ?? null;
    },
  };
}

function mutationResolvers(deps: DemoSchemaDeps) {
  const { store } = deps;
  return {
    addToCart: (_root: unknown, args: { productId: string; quantity: number }, context: Context) => {
      store.touch();
      const { identity } = tollgateOf(context);
      if (store.product(args.productId) === undefined) throw new GraphQLError('no such product', { extensions: { code: 'NOT_FOUND' } });
      const cart = store.addToCart(`${identity.tenant}/${identity.keyId}`, args.productId, args.quantity);
      return { lines: [...cart].map(([productId, quantity]) => ({ productId, quantity })) };
    },
    placeOrder: (_root: unknown, args: { items: { productId: string; quantity: number }[] }, context: Context) => {
      store.touch();
      return store.placeOrder(tollgateOf(context).identity.tenant, args.items, deps.clock.nowMs());
    },
    cancelOrder: (_root: unknown, args: { id: string }, context: Context) => {
      store.touch();
      return store.cancelOrder(tollgateOf(context).identity.tenant, args.id) ?? null;
    },
    exportOrdersReport: (_root: unknown, args: { format: 'CSV' | 'JSON' }, context: Context) => {
      store.touch();
      return store.exportOrders(tollgateOf(context).identity.tenant, args.format);
    },
  };
}

/** The resolvers of the object, interface and union types below the roots. */
function typeResolvers(store: DemoStore) {
  const orderTotal = (order: Order): number => order.items.reduce((sum, item) => sum + item.quantity * item.unitPriceCents, 0);
  return {
    Node: {
      __resolveType: (value: { id: string }) => (value.id.startsWith('p-') ? 'Product' : value.id.startsWith('c-') ? 'Category' : 'Order'),
    },
    SearchResult: {
      __resolveType: (value: { id: string }) => (value.id.startsWith('p-') ? 'Product' : 'Category'),
    },
    Category: {
      products: (category: { id: string }, args: PageArgs) => {
        store.touch();
        return page(store.productsIn(category.id), args);
      },
    },
    Product: {
      category: (product: Product) => store.category(product.categoryId),
      reviews: (product: Product, args: { first: number }) => (store.reviews.get(product.id) ?? []).slice(0, Math.max(0, args.first)),
      related: (product: Product, args: { first: number }) =>
        store
          .productsIn(product.categoryId)
          .filter((other) => other.id !== product.id)
          .slice(0, Math.max(0, args.first)),
    },
    Order: {
      totalCents: (order: Order) => orderTotal(order),
      items: (order: Order, args: { first: number }) => order.items.slice(0, Math.max(0, args.first)),
    },
    OrderItem: {
      product: (item: { productId: string }) => store.product(item.productId),
    },
    CartLine: {
      product: (line: { productId: string }) => store.product(line.productId),
    },
  };
}

/** Builds the demo's executable schema over `deps.store`. */
export function createDemoSchema(deps: DemoSchemaDeps) {
  return createSchema<Context>({
    typeDefs: DEMO_TYPE_DEFS,
    resolvers: {
      SafeInt,
      JSONObject,
      Query: queryResolvers(deps),
      Mutation: mutationResolvers(deps),
      ...typeResolvers(deps.store),
    },
  });
}
