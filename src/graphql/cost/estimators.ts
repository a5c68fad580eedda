/**
 * The cost model as graphql-query-complexity estimators: the reference engine.
 * The compiled per-document formula (`plan.ts`) must agree with it; a property
 * test and a check on each newly compiled document hold the two together.
 */
import { getComplexity, type ComplexityEstimator } from 'graphql-query-complexity';
import { OperationTypeNode, getOperationAST, type DocumentNode } from 'graphql';
import { fieldCostOf, sliceSize, type CostModel } from './model.js';

/** An estimator that prices every field by the cost directives (see `model.ts`). */
export function costDirectiveEstimator(model: CostModel): ComplexityEstimator {
  return ({ type, field, node, args, childComplexity }) => {
    const cost = model.fieldCost(type.name, field);
    const size = cost.sizing === 'list' || cost.sizing === 'connection' ? sliceSize(cost, args, model.options) : 1;
    let argumentsCost = 0;
    for (const argument of cost.arguments) {
      // only the arguments written in the query cost (a default alone costs nothing)
      if (node.arguments?.some((given) => given.name.value === argument.name) === true)
        argumentsCost += argument.price(args[argument.name]);
    }
    return fieldCostOf(cost, size, childComplexity, argumentsCost);
  };
}

/**
 * Prices one operation with graphql-query-complexity (no cache). The document
 * must be valid against the model's schema.
 * @throws PricingError for bad slicing arguments; GraphQLError for bad variables
 */
export function engineCost(input: {
  model: CostModel;
  document: DocumentNode;
  variables: Readonly<Record<string, unknown>> | undefined;
  operationName: string | undefined;
  maxQueryNodes?: number;
}): number {
  const operation = getOperationAST(input.document, input.operationName);
  const base = operation?.operation === OperationTypeNode.MUTATION ? input.model.options.mutationOperationWeight : 0;
  return (
    base +
    getComplexity({
      schema: input.model.schema,
      query: input.document,
      variables: { ...(input.variables ?? {}) },
      estimators: [costDirectiveEstimator(input.model)],
      ...(input.operationName === undefined ? {} : { operationName: input.operationName }),
      maxQueryNodes: input.maxQueryNodes ?? 100_000,
    })
  );
}
