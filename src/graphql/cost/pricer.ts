/**
 * Prices operations: compiles each document's cost formula once and caches it
 * by document identity (yoga hands the same parsed `DocumentNode` for the same
 * query string) and by query string (LRU-bounded), so a repeated operation
 * costs a map lookup and a walk of its formula.
 *
 * graphql-query-complexity stays the engine: the first time a document is
 * compiled, the formula is checked against `getComplexity` with the request's
 * variables; a disagreement (a bug in the compiler) is reported and that
 * document is priced by the engine from then on.
 */
import { getOperationAST, type DocumentNode, type GraphQLSchema } from 'graphql';
import { engineCost } from './estimators.js';
import { CostModel, PricingError, type CostModelOptions } from './model.js';
import { compileCostPlan, evaluatePlan, explainPlan, type CostLine, type CostPlan } from './plan.js';

export interface PricerOptions extends CostModelOptions {
  /** Compiled documents kept by query string. @default 1000 */
  maxCachedDocuments?: number;
  /** Called once per document whose compiled formula disagrees with the engine. */
  onEngineMismatch?: (input: { operationName: string | undefined; compiled: number; engine: number }) => void;
}

/** A compiled operation and whether the engine must price it instead. */
export interface PricedPlan {
  plan: CostPlan;
  isEngineOnly: boolean;
  /** Whether the compiled formula was checked against the engine yet. */
  isChecked: boolean;
}

export interface PriceInput {
  document: DocumentNode;
  operationName?: string | null | undefined;
  variables?: Readonly<Record<string, unknown>> | null | undefined;
  /** The query string, when known: a second cache key that survives re-parsing. */
  source?: string | undefined;
}

export interface PriceResult {
  cost: number;
  plan: CostPlan;
}

/** A small LRU on Map's insertion order. */
class Lru<K, V> {
  private readonly map = new Map<K, V>();
  constructor(private readonly max: number) {}
  get(key: K): V | undefined {
    const value = this.map.get(key);
    if (value !== undefined) {
      this.map.delete(key);
      this.map.set(key, value);
    }
    return value;
  }
  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.max) {
      const oldest = this.map.keys().next();
      if (oldest.done !== true) this.map.delete(oldest.value);
    }
  }
  get size(): number {
    return this.map.size;
  }
}

const NO_VARIABLES: Readonly<Record<string, unknown>> = Object.freeze({});

export class Pricer {
  readonly model: CostModel;
  private readonly byDocument = new WeakMap<DocumentNode, Map<string, PricedPlan>>();
  private readonly bySource: Lru<string, { document: DocumentNode; plans: Map<string, PricedPlan> }>;

  constructor(
    schema: GraphQLSchema,
    private readonly options: PricerOptions = {},
  ) {
    this.model = new CostModel(schema, options);
    this.bySource = new Lru(options.maxCachedDocuments ?? 1_000);
  }

  /** Documents cached by query string. */
  get cachedDocuments(): number {
    return this.bySource.size;
  }

  /**
   * The compiled plan of an operation (cached).
   * @throws PricingError never; Error when the operation is not in the document (validate first)
   */
  plan(input: PriceInput): PricedPlan {
    const key = input.operationName ?? '';
    let plans = this.byDocument.get(input.document);
    if (plans === undefined && input.source !== undefined) {
      const cached = this.bySource.get(input.source);
      if (cached !== undefined) {
        plans = cached.plans;
        this.byDocument.set(input.document, plans);
      }
    }
    if (plans === undefined) {
      plans = new Map();
      this.byDocument.set(input.document, plans);
      if (input.source !== undefined) this.bySource.set(input.source, { document: input.document, plans });
    }
    let priced = plans.get(key);
    if (priced === undefined) {
      const operation = getOperationAST(input.document, input.operationName ?? undefined);
      if (operation === null || operation === undefined)
        throw new Error(`no operation ${key === '' ? '(anonymous)' : key} in the document`);
      priced = { plan: compileCostPlan(this.model, input.document, operation), isEngineOnly: false, isChecked: false };
      plans.set(key, priced);
    }
    return priced;
  }

  /**
   * The requested cost of one operation with its variables.
   * @throws PricingError for a bad slicing argument
   */
  price(input: PriceInput): PriceResult {
    const priced = this.plan(input);
    const variables = input.variables ?? NO_VARIABLES;
    if (priced.isEngineOnly) return { cost: this.engine(input, priced.plan), plan: priced.plan };
    const cost = evaluatePlan(priced.plan, variables, this.model);
    if (!priced.isChecked) {
      let engine: number;
      try {
        engine = this.engine(input, priced.plan);
      } catch (error) {
        // Variables the engine cannot coerce fail execution too; check on a later request.
        if (error instanceof PricingError) throw error;
        return { cost, plan: priced.plan };
      }
      priced.isChecked = true;
      if (engine !== cost) {
        priced.isEngineOnly = true;
        this.options.onEngineMismatch?.({ operationName: priced.plan.operationName, compiled: cost, engine });
        return { cost: engine, plan: priced.plan };
      }
    }
    return { cost, plan: priced.plan };
  }

  /**
   * A quote: the cost and one line per selected field.
   * @throws PricingError for a bad slicing argument
   */
  explain(input: PriceInput): { cost: number; lines: CostLine[]; plan: CostPlan } {
    const priced = this.plan(input);
    const { cost, lines } = explainPlan(priced.plan, input.variables ?? NO_VARIABLES, this.model);
    return { cost: priced.isEngineOnly ? this.engine(input, priced.plan) : cost, lines, plan: priced.plan };
  }

  private engine(input: PriceInput, plan: CostPlan): number {
    const cost = engineCost({
      model: this.model,
      document: input.document,
      variables: input.variables ?? undefined,
      operationName: plan.operationName,
    });
    if (!Number.isFinite(cost)) throw new PricingError('COST_EXCEEDS_MAXIMUM', 'the operation cost is not finite');
    return Math.min(cost, Number.MAX_SAFE_INTEGER);
  }
}
