/**
 * A cost quote (dry run): parses, validates and prices an operation the way a
 * request would be, and lists what each selected field costs. Its cost is what
 * a request of the operation reserves: the priced cost, at least the minimum
 * cost (so `{ __typename }` quotes 1, as it reserves 1). Takes no tokens.
 */
import { GraphQLError, parse, specifiedRules, validate, type DocumentNode } from 'graphql';
import { STATIC_LIMIT_DEFAULTS, staticLimitsRule, type StaticLimits } from './guards.js';
import { PricingError } from './model.js';
import type { Pricer } from './pricer.js';
import type { CostLine } from './plan.js';

export interface QuoteInput {
  pricer: Pricer;
  query: string;
  variables?: Readonly<Record<string, unknown>> | null | undefined;
  operationName?: string | null | undefined;
  limits?: StaticLimits;
  /** The least a request reserves (`useTollgate`'s `cost.minimumCost`). @default 1 */
  minimumCost?: number;
}

export interface QuoteResult {
  operationName: string | null;
  operationType: 'query' | 'mutation' | 'subscription';
  /** Requested cost in units: what a request of the operation would reserve (at least the minimum cost). */
  cost: number;
  isDeferrable: boolean;
  lines: CostLine[];
}

function quoteError(code: string, message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code } });
}

/**
 * Prices an operation without running it.
 * @throws GraphQLError with `extensions.code`: `GRAPHQL_PARSE_FAILED`, `GRAPHQL_VALIDATION_FAILED`,
 *   a static guard's code, or a PricingError code
 */
export function quoteOperation(input: QuoteInput): QuoteResult {
  const limits = { ...STATIC_LIMIT_DEFAULTS, ...input.limits };
  let document: DocumentNode;
  try {
    document = parse(input.query, { maxTokens: limits.maxTokens });
  } catch (error) {
    const message = error instanceof GraphQLError ? error.message.replace(/^Syntax Error: /, '') : 'the query does not parse';
    throw quoteError('GRAPHQL_PARSE_FAILED', message);
  }
  const errors = validate(input.pricer.model.schema, document, [...specifiedRules, staticLimitsRule(limits)]);
  const first = errors[0];
  if (first !== undefined) {
    const code = typeof first.extensions['code'] === 'string' ? first.extensions['code'] : 'GRAPHQL_VALIDATION_FAILED';
    throw quoteError(code, first.message);
  }
  try {
    const { cost, lines, plan } = input.pricer.explain({
      document,
      operationName: input.operationName ?? undefined,
      variables: input.variables ?? undefined,
    });
    return {
      operationName: plan.operationName ?? null,
      operationType: plan.operationType,
      cost: Math.max(input.minimumCost ?? 1, cost),
      isDeferrable: plan.isDeferrable,
      lines,
    };
  } catch (error) {
    if (error instanceof PricingError) throw quoteError(error.code, error.message);
    throw quoteError('GRAPHQL_VALIDATION_FAILED', 'the operation cannot be priced');
  }
}
