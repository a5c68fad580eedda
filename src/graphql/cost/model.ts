/**
 * What each field of a schema costs, read once from the IBM GraphQL cost
 * directives (`@cost`, `@listSize`) and tollgate's `@deferrable`. Pure: no I/O.
 *
 * The cost of one field (DESIGN §3), in integer units:
 * - `none` (a single value): `weight + children`
 * - `list` (a list, or `@listSize` without `sizedFields`): `size × (weight + children)`
 * - `connection` (`@listSize(sizedFields: …)`): `weight + size × children`
 * - `sized-child` (a field named in its connection's `sizedFields`): `weight + children`
 *   (the connection already multiplied it)
 * plus what the field's written arguments cost, once per field (`arguments.ts`; the total is never negative),
 * where `size` is the one slicing argument given (two are refused unless `requireOneSlicingArgument: false`,
 * then the largest), else `assumedSize`, else the default list size; and `children` is the cost of the selection set (for
 * abstract types, the most expensive possible type, as graphql-query-complexity
 * computes it). Weights: `@cost` on the field, else `@cost` on its type, else
 * the mutation base for mutation root fields, else 1 for objects and 0 for leaves.
 */
import {
  GraphQLDirective,
  GraphQLBoolean,
  GraphQLInt,
  GraphQLList,
  GraphQLNonNull,
  GraphQLString,
  DirectiveLocation,
  getDirectiveValues,
  getNamedType,
  getNullableType,
  isAbstractType,
  isCompositeType,
  isInterfaceType,
  isListType,
  isObjectType,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLSchema,
} from 'graphql';
import { InputCosts, type ArgumentCost, type WeightOf } from './arguments.js';

/** SDL of the directives the cost model reads; add it to your type definitions. */
export const COST_DIRECTIVES_SDL = /* GraphQL */ `
  "Cost of a field (or of every field returning this type, or of an argument or input field when given), in integer units."
  directive @cost(
    weight: Int!
  ) on FIELD_DEFINITION | ARGUMENT_DEFINITION | INPUT_FIELD_DEFINITION | OBJECT | INTERFACE | UNION | ENUM | SCALAR
  "Size of a list or connection: a slicing argument (first/last), else assumedSize."
  directive @listSize(
    assumedSize: Int
    slicingArguments: [String!]
    sizedFields: [String!]
    requireOneSlicingArgument: Boolean = true
  ) on FIELD_DEFINITION
  "A mutation that may be answered 202 and run later when a defer limit is hit."
  directive @deferrable on FIELD_DEFINITION
`;

const COST_DIRECTIVE = new GraphQLDirective({
  name: 'cost',
  locations: [DirectiveLocation.FIELD_DEFINITION, DirectiveLocation.OBJECT],
  args: { weight: { type: new GraphQLNonNull(GraphQLInt) } },
});

const LIST_SIZE_DIRECTIVE = new GraphQLDirective({
  name: 'listSize',
  locations: [DirectiveLocation.FIELD_DEFINITION],
  args: {
    assumedSize: { type: GraphQLInt },
    slicingArguments: { type: new GraphQLList(new GraphQLNonNull(GraphQLString)) },
    sizedFields: { type: new GraphQLList(new GraphQLNonNull(GraphQLString)) },
    requireOneSlicingArgument: { type: GraphQLBoolean, defaultValue: true },
  },
});

const DEFERRABLE_DIRECTIVE = new GraphQLDirective({ name: 'deferrable', locations: [DirectiveLocation.FIELD_DEFINITION] });

export type Sizing = 'none' | 'list' | 'connection' | 'sized-child';

/** The cost parameters of one field. */
export interface FieldCost {
  /** `Type.field`, for breakdowns and errors. */
  coordinate: string;
  /** Integer units added once per value (per item for lists). */
  weight: number;
  sizing: Sizing;
  slicingArguments: readonly string[];
  /** Size when no slicing argument is given; null means the model's default list size. */
  assumedSize: number | null;
  /** Connection only: the list fields that carry its size (counted for the actual cost). */
  sizedFields: readonly string[];
  requireOneSlicingArgument: boolean;
  /** `@deferrable`: may be answered 202 when a defer limit is hit. */
  isDeferrable: boolean;
  /** The arguments whose values cost something (`@cost` on arguments and input fields; see `arguments.ts`). */
  arguments: readonly ArgumentCost[];
}

export interface CostModelOptions {
  /** Size of a list with no slicing argument and no `assumedSize`. @default 10 */
  defaultListSize?: number;
  /** Weight of a mutation root field without `@cost`; null: its type's default, as Apollo Router. @default 10 */
  mutationWeight?: number | null;
  /** Added once to every mutation operation (Apollo Router and Hive Gateway: 10, with `mutationWeight: null`). @default 0 */
  mutationOperationWeight?: number;
  /** Weight of a field returning an object, interface or union, without `@cost`. @default 1 */
  objectWeight?: number;
  /** Weight of a field returning a scalar or enum, without `@cost`. @default 0 */
  scalarWeight?: number;
  /** Largest accepted slicing argument value (first/last). @default 1000 */
  maxSlicingValue?: number;
  /** Weight of an input object given in an argument, without `@cost` (the IBM spec and Apollo Router: 1). @default 0 */
  inputObjectWeight?: number;
}

export const COST_MODEL_DEFAULTS: Required<CostModelOptions> = {
  defaultListSize: 10,
  mutationWeight: 10,
  mutationOperationWeight: 0,
  objectWeight: 1,
  scalarWeight: 0,
  maxSlicingValue: 1_000,
  inputObjectWeight: 0,
};

/** Why an operation cannot be priced; mapped to a 400 at the edge. */
export class PricingError extends Error {
  constructor(
    readonly code: 'INVALID_SLICING_ARGUMENT' | 'SLICING_ARGUMENT_REQUIRED' | 'COST_SLICING_ARGUMENTS' | 'COST_EXCEEDS_MAXIMUM',
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'PricingError';
  }
}

/** Costs are computed in doubles and saturate here, so they stay exact integers. */
export const COST_CAP = Number.MAX_SAFE_INTEGER;

const saturate = (value: number): number => (value > COST_CAP ? COST_CAP : value);

/**
 * Combines a field's weight, size, children cost and arguments cost per its sizing (see the module comment); the
 * arguments are added once per field (not per item) and the total is never negative (IBM cost spec §5.3.2.2).
 */
export function fieldCostOf(cost: FieldCost, size: number, children: number, argumentsCost = 0): number {
  let own: number;
  switch (cost.sizing) {
    case 'none':
    case 'sized-child':
      own = saturate(cost.weight + children);
      break;
    case 'list':
      own = saturate(size * saturate(cost.weight + children));
      break;
    case 'connection':
      own = saturate(cost.weight + saturate(size * children));
      break;
  }
  return argumentsCost === 0 ? own : Math.max(0, saturate(own + argumentsCost));
}

/**
 * The size of a list or connection from its coerced argument values (IBM cost spec §8.2, §8.4): the one slicing
 * argument given (an argument default counts as given; null does not), the largest when several are allowed,
 * else `assumedSize`, else the default list size.
 * @throws PricingError `INVALID_SLICING_ARGUMENT` for a value that is not an integer in 0..maxSlicingValue,
 *   `COST_SLICING_ARGUMENTS` when `requireOneSlicingArgument` and more than one is given,
 *   `SLICING_ARGUMENT_REQUIRED` when `requireOneSlicingArgument` and none is given
 */
export function sliceSize(
  cost: FieldCost,
  args: Readonly<Record<string, unknown>>,
  options: Required<CostModelOptions>,
  /** The field's response path, dotted (`a.b.c`), for the error. */
  path?: string,
): number {
  let size: number | undefined;
  let givenCount = 0;
  for (const name of cost.slicingArguments) {
    const value = args[name];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > options.maxSlicingValue) {
      throw new PricingError(
        'INVALID_SLICING_ARGUMENT',
        `${cost.coordinate}(${name}:) must be an integer in 0..${options.maxSlicingValue}`,
        { coordinate: cost.coordinate, argument: name, max: options.maxSlicingValue },
      );
    }
    givenCount += 1;
    size = size === undefined ? value : Math.max(size, value);
  }
  if (cost.requireOneSlicingArgument && givenCount > 1) {
    const given = cost.slicingArguments.filter((name) => args[name] !== undefined && args[name] !== null);
    throw new PricingError(
      'COST_SLICING_ARGUMENTS',
      `${cost.coordinate} takes exactly one of ${cost.slicingArguments.join(', ')}; got ${given.join(' and ')}`,
      { coordinate: cost.coordinate, arguments: given, ...(path === undefined ? {} : { path: path.split('.') }) },
    );
  }
  if (size !== undefined) return size;
  if (cost.requireOneSlicingArgument) {
    throw new PricingError('SLICING_ARGUMENT_REQUIRED', `${cost.coordinate} needs one of: ${cost.slicingArguments.join(', ')}`, {
      coordinate: cost.coordinate,
      ...(path === undefined ? {} : { path: path.split('.') }),
    });
  }
  return cost.assumedSize ?? options.defaultListSize;
}

function typeWeight(type: GraphQLNamedType): number | undefined {
  if (type.astNode === undefined || type.astNode === null) return undefined;
  const values = getDirectiveValues(COST_DIRECTIVE, type.astNode);
  return typeof values?.['weight'] === 'number' ? values['weight'] : undefined;
}

/** The `@cost(weight:)` of an argument or input field (any integer: a negative one lowers its field's cost). */
const argumentWeight: WeightOf = (definition) => {
  if (definition.astNode === undefined || definition.astNode === null) return undefined;
  const values = getDirectiveValues(COST_DIRECTIVE, definition.astNode);
  return typeof values?.['weight'] === 'number' ? values['weight'] : undefined;
};

function checkWeight(coordinate: string, weight: number): number {
  if (!Number.isSafeInteger(weight) || weight < 0) throw new Error(`@cost(weight:) of ${coordinate} must be a non-negative integer`);
  return weight;
}

/** Reads every field's cost parameters from a schema once; lookups are then a map access. */
export class CostModel {
  readonly options: Required<CostModelOptions>;
  private readonly costs = new WeakMap<GraphQLField<unknown, unknown>, FieldCost>();
  /** `Type.field` of every field named in some connection's `sizedFields`. */
  private readonly sizedChildren = new Set<string>();
  private readonly inputCosts: InputCosts;

  constructor(
    readonly schema: GraphQLSchema,
    options: CostModelOptions = {},
  ) {
    this.options = { ...COST_MODEL_DEFAULTS, ...options };
    this.inputCosts = new InputCosts(argumentWeight, this.options.inputObjectWeight);
    for (const type of Object.values(schema.getTypeMap())) {
      if (!isObjectType(type) && !isInterfaceType(type)) continue;
      for (const field of Object.values(type.getFields())) {
        const listSize = field.astNode ? getDirectiveValues(LIST_SIZE_DIRECTIVE, field.astNode) : undefined;
        const sized = listSize?.['sizedFields'];
        if (!Array.isArray(sized) || sized.length === 0) continue;
        const target = getNamedType(field.type);
        const targets = isAbstractType(target) ? [target, ...schema.getPossibleTypes(target)] : [target];
        for (const owner of targets) for (const name of sized) this.sizedChildren.add(`${owner.name}.${String(name)}`);
      }
    }
  }

  /** The cost parameters of `field` selected on `parent`. */
  fieldCost(parentName: string, field: GraphQLField<unknown, unknown>): FieldCost {
    const known = this.costs.get(field);
    if (known !== undefined) return known;
    const computed = this.compute(parentName, field);
    this.costs.set(field, computed);
    return computed;
  }

  private compute(parentName: string, field: GraphQLField<unknown, unknown>): FieldCost {
    const coordinate = `${parentName}.${field.name}`;
    const named = getNamedType(field.type);
    const ast = field.astNode ?? undefined;
    const costValues = ast ? getDirectiveValues(COST_DIRECTIVE, ast) : undefined;
    const listSize = ast ? getDirectiveValues(LIST_SIZE_DIRECTIVE, ast) : undefined;
    const isDeferrable = ast ? getDirectiveValues(DEFERRABLE_DIRECTIVE, ast) !== undefined : false;
    let weight: number;
    if (typeof costValues?.['weight'] === 'number') weight = costValues['weight'];
    else {
      const fromType = typeWeight(named);
      if (fromType !== undefined) weight = fromType;
      else if (this.options.mutationWeight !== null && this.schema.getMutationType()?.name === parentName)
        weight = this.options.mutationWeight;
      else weight = isCompositeType(named) ? this.options.objectWeight : this.options.scalarWeight;
    }
    checkWeight(coordinate, weight);
    const sizedFields = Array.isArray(listSize?.['sizedFields']) ? (listSize['sizedFields'] as unknown[]).map(String) : [];
    const slicingArguments = Array.isArray(listSize?.['slicingArguments']) ? (listSize['slicingArguments'] as unknown[]).map(String) : [];
    const assumed = listSize?.['assumedSize'];
    let sizing: Sizing = 'none';
    if (this.sizedChildren.has(coordinate)) sizing = 'sized-child';
    else if (sizedFields.length > 0) sizing = 'connection';
    else if (listSize !== undefined || isListType(getNullableType(field.type))) sizing = 'list';
    return {
      coordinate,
      weight,
      sizing,
      slicingArguments,
      assumedSize: typeof assumed === 'number' ? assumed : null,
      sizedFields,
      // ignored without slicing arguments (§8.4)
      requireOneSlicingArgument: slicingArguments.length > 0 && listSize?.['requireOneSlicingArgument'] !== false,
      isDeferrable,
      arguments: this.inputCosts.argumentsOf(field.args),
    };
  }
}
