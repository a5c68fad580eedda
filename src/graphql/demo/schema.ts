/**
 * The demo API served by `npm start`: a catalog and orders, with connections
 * (`first`/`after`), nested lists, a union, an interface, several mutations
 * and a `@deferrable` report export, every field priced by the cost directives.
 * Orders, carts and exports belong to the caller's tenant (from the API key,
 * never from an argument).
 */
import { GraphQLError, GraphQLScalarType, Kind, valueFromASTUntyped } from 'graphql';
import { createSchema } from 'graphql-yoga';
import { COST_DIRECTIVES_SDL } from '../cost/model.js';
import { readJob, type JobReader } from '../../jobs/index.js';
import type { TollgateContext } from '../plugins/use-tollgate.js';
import type { DemoStore, Order, Product } from './data.js';

export interface DemoSchemaDeps {
  store: DemoStore;
  version: string;
  /** Redis TIME, for the `status` field. */
  deciderTimeMs: () => Promise<number>;
  clock: { nowMs(): number };
  /** Deferred jobs, for the `job(id)` field (without it the field answers JOBS_UNAVAILABLE). */
  jobs?: JobReader;
}

const TYPE_DEFS = /* GraphQL */ `
  ${COST_DIRECTIVES_SDL}

  "An integer up to 2^53 - 1 (GraphQL Int stops at 2^31 - 1)."
  scalar SafeInt
  "A JSON object (operation variables)."
  scalar JSONObject

  type Query {
    "Who is serving this request and the decider's clock."
    status: ServiceStatus!
    "The caller: tenant, key and plan (from the API key)."
    me: Viewer!
    "Products, newest first, optionally in one category."
    products(first: Int = 20, after: String, category: ID): ProductConnection!
      @listSize(slicingArguments: ["first"], sizedFields: ["edges", "nodes"])
    product(id: ID!): Product
    categories: [Category!]! @listSize(assumedSize: 4)
    "The caller's orders."
    orders(first: Int = 20, after: String): OrderConnection! @listSize(slicingArguments: ["first"], sizedFields: ["edges", "nodes"])
    order(id: ID!): Order
    "Products and categories whose name contains text."
    search(text: String!, first: Int = 10): [SearchResult!]! @listSize(slicingArguments: ["first"])
    node(id: ID!): Node
    "What an operation would cost (dry run: no tokens taken)."
    quote(query: String!, variables: JSONObject, operationName: String): CostQuote! @cost(weight: 1)
    "A deferred (202) operation of the caller's tenant; null when the tenant has no such job."
    job(id: ID!): Job
  }

  type Mutation {
    addToCart(productId: ID!, quantity: Int!): Cart!
    placeOrder(items: [OrderItemInput!]!): Order! @cost(weight: 20)
    cancelOrder(id: ID!): Order
    "Exports every order of the tenant; expensive, so it may be answered 202 and run later."
    exportOrdersReport(format: ReportFormat = CSV): ReportExport! @cost(weight: 500) @deferrable
  }

  interface Node {
    id: ID!
  }

  union SearchResult = Product | Category

  type ServiceStatus {
    version: String!
    "Redis TIME (the decider's only clock) in ms since the epoch, as a decimal string."
    deciderTimeMs: String!
  }

  type Viewer {
    tenant: String!
    keyId: String!
    plan: String!
  }

  type Category implements Node {
    id: ID!
    name: String!
    products(first: Int = 20, after: String): ProductConnection! @listSize(slicingArguments: ["first"], sizedFields: ["edges", "nodes"])
  }

  type Product implements Node {
    id: ID!
    name: String!
    priceCents: Int!
    tags: [String!]!
    category: Category!
    reviews(first: Int = 5): [Review!]! @listSize(slicingArguments: ["first"])
    related(first: Int = 3): [Product!]! @listSize(slicingArguments: ["first"])
  }

  type Review {
    id: ID!
    rating: Int!
    body: String!
  }

  type ProductConnection {
    edges: [ProductEdge!]!
    nodes: [Product!]!
    pageInfo: PageInfo!
    totalCount: Int!
  }

  type ProductEdge {
    cursor: String!
    node: Product!
  }

  type OrderConnection {
    edges: [OrderEdge!]!
    nodes: [Order!]!
    pageInfo: PageInfo!
    totalCount: Int!
  }

  type OrderEdge {
    cursor: String!
    node: Order!
  }

  type PageInfo @cost(weight: 0) {
    hasNextPage: Boolean!
    endCursor: String
  }

  type Order implements Node {
    id: ID!
    status: OrderStatus!
    totalCents: Int!
    createdAtMs: SafeInt!
    items(first: Int = 10): [OrderItem!]! @listSize(slicingArguments: ["first"])
  }

  type OrderItem {
    product: Product!
    quantity: Int!
    unitPriceCents: Int!
  }

  enum OrderStatus {
    PLACED
    CANCELLED
  }

  type Cart {
    lines: [CartLine!]! @listSize(assumedSize: 5)
  }

  type CartLine {
    product: Product!
    quantity: Int!
  }

  input OrderItemInput {
    productId: ID!
    quantity: Int!
  }

  enum ReportFormat {
    CSV
    JSON
  }

  type ReportExport {
    id: ID!
    format: ReportFormat!
    status: String!
    rowCount: Int!
  }

  "A deferred operation: queued, running, then succeeded, failed or expired (never charged)."
  type Job {
    id: ID!
    "queued, running, succeeded, failed or expired"
    status: String!
    operationName: String
    requestedCost: SafeInt!
    "Units charged for the run (null until it ran)."
    actualCost: SafeInt
    "The run's { data, errors } (null until it ran)."
    result: JSONObject
    "Stable code of a failed or expired job."
    errorCode: String
    createdAtMs: SafeInt!
    updatedAtMs: SafeInt!
    startedAtMs: SafeInt
    finishedAtMs: SafeInt
    expiresAtMs: SafeInt!
  }

  type CostQuote @cost(weight: 0) {
    operationName: String
    operationType: String!
    "Requested cost in units: what a request would reserve."
    cost: SafeInt!
    isDeferrable: Boolean!
    lines: [CostLine!]!
  }

  type CostLine @cost(weight: 0) {
    path: String!
    coordinate: String!
    weight: SafeInt!
    size: SafeInt!
    cost: SafeInt!
  }
`;

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

function tollgateOf(context: Context): NonNullable<TollgateContext['tollgate']> {
  if (context.tollgate === undefined) throw new GraphQLError('not identified', { extensions: { code: 'UNIDENTIFIED' } });
  return context.tollgate;
}

/** A page of a list: `first` items after the opaque cursor `after` (the index, base64url). */
function page<T>(items: T[], first: number, after: string | null | undefined, cursorOf: (index: number) => string) {
  let start = 0;
  if (after !== null && after !== undefined) {
    const index = Number(Buffer.from(after, 'base64url').toString('utf8'));
    start = Number.isSafeInteger(index) && index >= 0 ? index + 1 : 0;
  }
  const slice = items.slice(start, start + Math.max(0, first));
  const edges = slice.map((node, offset) => ({ cursor: cursorOf(start + offset), node }));
  return {
    edges,
    nodes: slice,
    pageInfo: { hasNextPage: start + slice.length < items.length, endCursor: edges.at(-1)?.cursor ?? null },
    totalCount: items.length,
  };
}

const cursor = (index: number): string => Buffer.from(String(index), 'utf8').toString('base64url');

/** Builds the demo's executable schema over `store`. */
export function createDemoSchema(deps: DemoSchemaDeps) {
  const { store } = deps;
  const orderTotal = (order: Order): number => order.items.reduce((sum, item) => sum + item.quantity * item.unitPriceCents, 0);
  return createSchema<Context>({
    typeDefs: TYPE_DEFS,
    resolvers: {
      SafeInt,
      JSONObject,
      Query: {
        status: async () => ({ version: deps.version, deciderTimeMs: String(await deps.deciderTimeMs()) }),
        me: (_root, _args, context) => {
          const { identity, plan } = tollgateOf(context);
          return { tenant: identity.tenant, keyId: identity.keyId, plan: plan.id };
        },
        products: (_root, args: { first: number; after?: string | null; category?: string | null }) => {
          store.touch();
          return page(store.productsIn(args.category), args.first, args.after, cursor);
        },
        product: (_root, args: { id: string }) => {
          store.touch();
          return store.product(args.id) ?? null;
        },
        categories: () => {
          store.touch();
          return store.categories;
        },
        orders: (_root, args: { first: number; after?: string | null }, context) => {
          store.touch();
          return page(store.ordersOf(tollgateOf(context).identity.tenant), args.first, args.after, cursor);
        },
        order: (_root, args: { id: string }, context) => {
          store.touch();
          return store.order(tollgateOf(context).identity.tenant, args.id) ?? null;
        },
        search: (_root, args: { text: string; first: number }) => {
          store.touch();
          const text = args.text.toLowerCase();
          const hits = [
            ...store.categories.filter((category) => category.name.toLowerCase().includes(text)),
            ...store.products.filter((product) => product.name.toLowerCase().includes(text)),
          ];
          return hits.slice(0, Math.max(0, args.first));
        },
        node: (_root, args: { id: string }, context) => {
          store.touch();
          return store.product(args.id) ?? store.category(args.id) ?? store.order(tollgateOf(context).identity.tenant, args.id) ?? null;
        },
        quote: (_root, args: { query: string; variables?: Record<string, unknown> | null; operationName?: string | null }, context) =>
          tollgateOf(context).quote(args),
        job: async (_root, args: { id: string }, context) => {
          const { identity } = tollgateOf(context);
          if (deps.jobs === undefined) throw new GraphQLError('deferred jobs are not available', { extensions: { code: 'JOBS_UNAVAILABLE' } });
          return (await readJob(deps.jobs, identity.tenant, args.id)) ?? null;
        },
      },
      Mutation: {
        addToCart: (_root, args: { productId: string; quantity: number }, context) => {
          store.touch();
          const { identity } = tollgateOf(context);
          if (store.product(args.productId) === undefined) throw new GraphQLError('no such product', { extensions: { code: 'NOT_FOUND' } });
          const cart = store.addToCart(`${identity.tenant}/${identity.keyId}`, args.productId, args.quantity);
          return { lines: [...cart].map(([productId, quantity]) => ({ productId, quantity })) };
        },
        placeOrder: (_root, args: { items: { productId: string; quantity: number }[] }, context) => {
          store.touch();
          return store.placeOrder(tollgateOf(context).identity.tenant, args.items, deps.clock.nowMs());
        },
        cancelOrder: (_root, args: { id: string }, context) => {
          store.touch();
          return store.cancelOrder(tollgateOf(context).identity.tenant, args.id) ?? null;
        },
        exportOrdersReport: (_root, args: { format: 'CSV' | 'JSON' }, context) => {
          store.touch();
          return store.exportOrders(tollgateOf(context).identity.tenant, args.format);
        },
      },
      Node: {
        __resolveType: (value: { id: string }) => (value.id.startsWith('p-') ? 'Product' : value.id.startsWith('c-') ? 'Category' : 'Order'),
      },
      SearchResult: {
        __resolveType: (value: { id: string }) => (value.id.startsWith('p-') ? 'Product' : 'Category'),
      },
      Category: {
        products: (category: { id: string }, args: { first: number; after?: string | null }) => {
          store.touch();
          return page(store.productsIn(category.id), args.first, args.after, cursor);
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
    },
  });
}
