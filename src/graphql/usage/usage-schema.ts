/**
 * The schema of the tenant usage API (`/usage/graphql`) and its resolvers. Every field reads the
 * caller's own tenant (the context, from its API key); no argument names a tenant. Quantities are
 * `Float` in GraphQL (safe integers above Int's 32 bits), times ISO-8601 strings.
 */
import { GraphQLError, buildSchema, type GraphQLSchema } from 'graphql';
import type { PriceBreakdown, Statement } from '../../billing/index.js';
import { AppError, ValidationError } from '../../shared/index.js';
import type { Granularity, SeriesBy } from './series.js';
import { receiptRange } from './receipt-search.js';
import type { Receipt, UsageCaller, UsageService } from './usage-service.js';

const SDL = /* GraphQL */ `
  type Query {
    "Each limit's remaining, reset and thresholds (nothing spent), the current period and its projected bill."
    usage: Usage!
    "Units per hour or UTC day from the ledger, per operation or per limit; [from, to) at most 366 days."
    usageSeries(from: String!, to: String!, granularity: Granularity!, by: SeriesBy!): [SeriesPoint!]!
    "Statements of the last closed periods (1..24), newest first."
    statements(last: Int!): [Statement!]!
    "The ledger entry behind an extensions.cost.receipt, or null (unknown, not yet ledgered)."
    receipt(id: String!): Receipt
    "Receipts whose event happened in [from, to) (ISO-8601, at most 366 days), newest first; first 1..100."
    receipts(from: String!, to: String!, first: Int = 25, after: String): ReceiptPage!
    "The caller's deferred (202) jobs, newest first; first 1..100."
    jobs(first: Int = 25, after: String): JobPage!
  }
  type ReceiptPage {
    items: [Receipt!]!
    "Pass as 'after' for the next page; null on the last page."
    cursor: String
  }
  type JobPage {
    items: [JobSummary!]!
    "Pass as 'after' for the next page; null on the last page."
    cursor: String
  }
  "A deferred job as listed (its whole result: GET /jobs/<id> with the API key)."
  type JobSummary {
    id: String!
    "queued, running, succeeded, failed or expired."
    status: String!
    operationName: String
    requestedCost: Float!
    actualCost: Float
    errorCode: String
    createdAt: String!
    finishedAt: String
    "The first 200 characters of the stored result's JSON (null until it ran)."
    resultSummary: String
    resultChars: Int
    "Where the whole job is read with the API key."
    resultPath: String!
  }
  enum Granularity {
    HOUR
    DAY
  }
  enum SeriesBy {
    OPERATION
    LIMIT
  }
  type Usage {
    now: String!
    limits: [LimitUsage!]!
    period: UsagePeriod!
    warnings: [WarningSent!]!
    "Requests denied, by limit and the last few (counted by the API processes, flushed every second)."
    denials: Denials!
  }
  type Denials {
    byLimit: [LimitDenials!]!
    "The last 10 denials, newest first."
    recent: [Denial!]!
  }
  type LimitDenials {
    limit: String!
    "Since the start of this UTC hour."
    thisHour: Float!
    "This UTC hour and the 23 before it."
    last24Hours: Float!
  }
  type Denial {
    at: String!
    limit: String!
    operation: String!
  }
  type LimitUsage {
    id: String!
    kind: String!
    mode: String!
    remaining: Float!
    resetMs: Float!
    usedUnits: Float
    limitUnits: Float
    thresholdsPercent: [Int!]!
    reachedPercents: [Int!]!
  }
  type UsagePeriod {
    start: String!
    end: String!
    usedUnits: Float!
    includedUnits: Float
    projectedUnits: Float!
    projectedBill: Bill
  }
  type Bill {
    currency: String!
    units: Float!
    includedUnits: Float!
    overageUnits: Float!
    baseFeeMicros: Float!
    totalMicros: Float!
    tiers: [BillTier!]!
  }
  type BillTier {
    units: Float!
    unitPriceMicros: Float!
    amountMicros: Float!
  }
  type WarningSent {
    limitId: String!
    percent: Int!
    status: String!
    createdAt: String!
  }
  type SeriesPoint {
    start: String!
    key: String!
    units: Float!
  }
  type Statement {
    periodStart: String!
    periodEnd: String!
    version: Int!
    isFinal: Boolean!
    units: Float!
    entries: Float!
    lines: [StatementLine!]!
    price: Bill!
    computedAt: String!
  }
  type StatementLine {
    operation: String!
    units: Float!
  }
  type Receipt {
    id: String!
    kind: String!
    operation: String!
    units: Float!
    reservedUnits: Float!
    at: String!
    periodStart: String!
    lateOf: String
    settlement: Settlement
  }
  type Settlement {
    units: Float!
    at: String!
  }
`;

export const MAX_STATEMENTS = 24;

const iso = (ms: number): string => new Date(ms).toISOString();

/** A failure as the usage API answers it: a stable code (and, for dependencies, retryable). */
function asGraphQLError(error: unknown): GraphQLError {
  if (error instanceof AppError) {
    const isInput = error instanceof ValidationError;
    return new GraphQLError(isInput ? error.message : 'usage is unavailable; retry later', {
      extensions: { code: error.code, http: { status: isInput ? 400 : 503 } },
    });
  }
  return new GraphQLError('Unexpected error.', { extensions: { code: 'INTERNAL' } });
}

async function guarded<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw asGraphQLError(error);
  }
}

/** A price breakdown as the `Bill` type. */
export const billView = (price: PriceBreakdown): Record<string, unknown> => ({ ...price });

/** A statement as the `Statement` type: its lines are its units per operation, in name order. */
export function statementView(statement: Statement): Record<string, unknown> {
  return {
    periodStart: statement.periodStart,
    periodEnd: statement.periodEnd,
    version: statement.version,
    isFinal: statement.isFinal,
    units: statement.usage.units,
    entries: statement.usage.entries,
    lines: Object.keys(statement.usage.byOperation)
      .sort()
      .map((operation) => ({ operation, units: statement.usage.byOperation[operation] })),
    price: billView(statement.price),
    computedAt: iso(statement.computedAtMs),
  };
}

/** A receipt as the `Receipt` type. */
const receiptView = (receipt: Receipt): Record<string, unknown> => ({
  ...receipt,
  at: iso(receipt.atMs),
  settlement: receipt.settlement === null ? null : { units: receipt.settlement.units, at: iso(receipt.settlement.atMs) },
});

/** The schema, built once. */
export const USAGE_SCHEMA: GraphQLSchema = buildSchema(SDL);

/** The root value of one call: resolvers bound to the caller's tenant. */
export function usageRoot(service: UsageService, caller: UsageCaller): Record<string, unknown> {
  return {
    usage: () =>
      guarded(async () => {
        const view = await service.usage(caller);
        return {
          now: iso(view.nowMs),
          limits: view.limits,
          period: {
            ...view.period,
            start: iso(view.period.startMs),
            end: iso(view.period.endMs),
            projectedBill: view.period.projectedBill === null ? null : billView(view.period.projectedBill),
          },
          warnings: view.warnings.map((warning) => ({ ...warning, createdAt: iso(warning.createdAtMs) })),
          denials: {
            byLimit: view.denials.byLimit.map((entry) => ({ ...entry, limit: entry.limitId })),
            recent: view.denials.recent.map((denial) => ({ at: iso(denial.atMs), limit: denial.limitId, operation: denial.operation })),
          },
        };
      }),
    usageSeries: (args: { from: string; to: string; granularity: Granularity; by: SeriesBy }) =>
      guarded(() => service.series(caller, args)),
    statements: (args: { last: number }) =>
      guarded(async () => {
        if (!Number.isInteger(args.last) || args.last < 1 || args.last > MAX_STATEMENTS) {
          throw new ValidationError('INVALID_INPUT', `last must be an integer in 1..${MAX_STATEMENTS}`);
        }
        return (await service.statements(caller, args.last)).map(statementView);
      }),
    receipts: (args: { from: string; to: string; first: number; after?: string | null }) =>
      guarded(async () => {
        const page = await service.receipts(caller, { ...receiptRange(args.from, args.to), first: args.first, after: args.after ?? null });
        return { items: page.items.map(receiptView), cursor: page.cursor };
      }),
    jobs: (args: { first: number; after?: string | null }) =>
      guarded(async () => {
        const page = await service.jobs(caller, { first: args.first, after: args.after ?? null });
        return {
          items: page.items.map((job) => ({
            ...job,
            createdAt: iso(job.createdAtMs),
            finishedAt: job.finishedAtMs === null ? null : iso(job.finishedAtMs),
            resultPath: `/jobs/${job.id}`,
          })),
          cursor: page.cursor,
        };
      }),
    receipt: (args: { id: string }) =>
      guarded(async () => {
        const receipt = await service.receipt(caller, args.id);
        return receipt === null ? null : receiptView(receipt);
      }),
  };
}
