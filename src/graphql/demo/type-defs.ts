/**
 * The demo API's type definitions: a catalog and orders, with connections
 * (`first`/`after`), nested lists, a union, an interface, several mutations
 * and a `@deferrable` report export, every field priced by the cost
 * directives. The resolvers are in `schema.ts`.
 */
import { COST_DIRECTIVES_SDL } from '../cost/model.js';

/** The demo's SDL, with the cost directives' definitions. */
export const DEMO_TYPE_DEFS = /* GraphQL */ `
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
