/**
 * `SchemaJobExecutor`: the `JobExecutor` of deferred jobs. Runs a job's
 * operation in-process against the API's schema with the tenant's context
 * (the same `tollgate` context a request gets), and measures the actual cost
 * from what came back exactly as `useTollgate` does (`measureActualCost` over
 * the compiled cost plan, at least `minimumCost`).
 */
import { GraphQLError, execute, parse, specifiedRules, validate, type ExecutionResult, type GraphQLSchema } from 'graphql';
import { parseKeyId, parsePlanId, parseTenantId, type PlanId, type TenantId } from '../../shared/index.js';
import type { JobError, JobExecution, JobExecutionInput, JobExecutor, JobPolicy } from '../../jobs/index.js';
import { STATIC_LIMIT_DEFAULTS, staticLimitsRule, type StaticLimits } from '../cost/guards.js';
import { PricingError, type CostModelOptions } from '../cost/model.js';
import { measureActualCost } from '../cost/actual-cost.js';
import { Pricer } from '../cost/pricer.js';
import { quoteOperation } from '../cost/quote.js';
import type { Identity } from '../identity/identify.js';
import { tenantPlanOf, type PlanStore } from '../plans.js';
import type { TollgateContext } from '../plugins/use-tollgate.js';

export interface SchemaJobExecutorOptions {
  schema: GraphQLSchema;
  plans: PlanStore;
  /** The cost model the plugin uses (must match, or jobs are measured differently). */
  cost?: CostModelOptions & { minimumCost?: number };
  /** @default STATIC_LIMIT_DEFAULTS */
  limits?: StaticLimits;
}

const MASKED_MESSAGE = 'Unexpected error.';

/** A GraphQL error as stored with a job: resolver crashes are masked like yoga masks them. */
function toJobError(error: GraphQLError): JobError {
  const code = error.extensions['code'];
  const original = error.originalError;
  if (original !== undefined && original !== null && !(original instanceof GraphQLError))
    return { message: MASKED_MESSAGE, code: 'INTERNAL_SERVER_ERROR' };
  return { message: error.message, code: typeof code === 'string' ? code : null };
}

export class SchemaJobExecutor implements JobExecutor {
  private readonly pricer: Pricer;
  private readonly minimumCost: number;
  private readonly limits: Required<StaticLimits>;

  constructor(private readonly options: SchemaJobExecutorOptions) {
    this.pricer = new Pricer(options.schema, options.cost ?? {});
    this.minimumCost = options.cost?.minimumCost ?? 1;
    this.limits = { ...STATIC_LIMIT_DEFAULTS, ...options.limits };
  }

  policyOf(input: { tenant: TenantId; planId: PlanId }): JobPolicy | undefined {
    const plan = tenantPlanOf(this.options.plans, input.planId, input.tenant);
    return plan === undefined
      ? undefined
      : {
          limits: plan.limits,
          billingPeriod: plan.billingPeriod,
          policyVersion: plan.version,
          ...(plan.subShards === undefined ? {} : { subShards: plan.subShards }),
        };
  }

  async execute(input: JobExecutionInput): Promise<JobExecution> {
    const plan = tenantPlanOf(this.options.plans, parsePlanId(input.planId), parseTenantId(input.tenant));
    if (plan === undefined) return this.failed('PLAN_UNAVAILABLE', 'no plan is configured for this job', input.cost);
    let document;
    try {
      document = parse(input.query, { maxTokens: this.limits.maxTokens });
    } catch {
      return this.failed('GRAPHQL_PARSE_FAILED', 'the query does not parse', input.cost);
    }
    const invalid = validate(this.options.schema, document, [...specifiedRules, staticLimitsRule(this.limits)])[0];
    if (invalid !== undefined) return this.failed('GRAPHQL_VALIDATION_FAILED', invalid.message, input.cost);
    const identity: Identity = {
      kind: 'apiKey',
      tenant: parseTenantId(input.tenant),
      keyId: parseKeyId(input.keyId),
      planId: plan.id,
      keyFingerprint: null,
      clientIp: undefined,
    };
    const context: TollgateContext = {
      tollgate: {
        identity,
        plan,
        quote: (quote) =>
          quoteOperation({
            pricer: this.pricer,
            query: quote.query,
            variables: quote.variables ?? undefined,
            operationName: quote.operationName ?? undefined,
            limits: this.limits,
            minimumCost: this.minimumCost,
          }),
      },
    };
    const result: ExecutionResult = await execute({
      schema: this.options.schema,
      document,
      variableValues: input.variables,
      operationName: input.operationName,
      contextValue: context,
    });
    let actualCost: number;
    try {
      const { plan: costPlan } = this.pricer.price({
        document,
        operationName: input.operationName,
        variables: input.variables,
        source: input.query,
      });
      actualCost = Math.max(this.minimumCost, measureActualCost(costPlan, result.data, input.variables));
    } catch (error) {
      // Priced at submission, so this cannot happen unless the schema changed: charge what was requested.
      if (!(error instanceof PricingError)) throw error;
      actualCost = input.cost;
    }
    return {
      result: {
        data: result.data ?? null,
        ...(result.errors === undefined || result.errors.length === 0 ? {} : { errors: result.errors.map(toJobError) }),
      },
      actualCost,
    };
  }

  /** A run that never reached the resolvers is charged the minimum (it was admitted). */
  private failed(code: string, message: string, requested: number): JobExecution {
    return { result: { data: null, errors: [{ message, code }] }, actualCost: Math.min(requested, this.minimumCost) };
  }
}
