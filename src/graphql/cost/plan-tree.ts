/**
 * The shape of a compiled cost plan (see `plan.ts`) and the two reads every
 * walk of it makes: a value that may come from the variables, and whether a
 * `@skip`/`@include` condition keeps a selection. Shared by the requested-cost
 * evaluation (`plan.ts`) and the actual-cost measurement (`actual-cost.ts`).
 * Pure: no I/O.
 */
import type { ArgumentCost } from './arguments.js';
import type { FieldCost } from './model.js';

/** A request's raw (JSON) variables. */
export type Variables = Readonly<Record<string, unknown>>;

/** A value known at compile time, or read from the variables. */
export type ValueRef =
  | { kind: 'const'; value: unknown }
  | {
      kind: 'var';
      name: string;
      /** The variable's default (undefined: none). */
      variableDefault: unknown;
      hasVariableDefault: boolean;
      /** The argument's default, used when the variable is not provided at all. */
      argumentDefault: unknown;
    };

/** One `@include(if:)` or `@skip(if:)` of a selection. */
export interface Condition {
  /** true: `@include(if:)`; false: `@skip(if:)`. */
  isInclude: boolean;
  ref: ValueRef;
}

/** A selected field with its cost parameters and its compiled selection set. */
export interface FieldPlan {
  kind: 'field';
  responseKey: string;
  fieldName: string;
  cost: FieldCost;
  slicing: { name: string; ref: ValueRef }[];
  /** The costed arguments written in the query, with their values. */
  arguments: { cost: ArgumentCost; ref: ValueRef }[];
  children: SelectionPlan | null;
}

/** A fragment spread or inline fragment: its selection, counted for its type condition's types. */
export interface FragmentPlan {
  kind: 'fragment';
  selection: SelectionPlan;
}

/** One selection of a selection set, with the types it counts for and its conditions. */
export interface PlanEntry {
  typeNames: readonly string[];
  conditions: Condition[];
  node: FieldPlan | FragmentPlan;
}

/** A compiled selection set. */
export interface SelectionPlan {
  entries: PlanEntry[];
  /** Every entry counts for the same single type: a plain sum. */
  isSingleType: boolean;
}

/** A compiled operation. */
export interface CostPlan {
  operationType: 'query' | 'mutation' | 'subscription';
  operationName: string | undefined;
  root: SelectionPlan;
  /** Every root field is `@deferrable` (and the operation is a mutation). */
  isDeferrable: boolean;
  /** Added once to the operation's cost (`mutationOperationWeight` for a mutation; else 0). */
  baseCost: number;
  /** The variables the formula reads (slicing arguments, skip/include). */
  variableNames: readonly string[];
}

/**
 * The value a reference stands for with these variables: a provided variable
 * (even null), else the variable's default, else the argument's default.
 */
export function resolveRef(ref: ValueRef, variables: Variables): unknown {
  if (ref.kind === 'const') return ref.value;
  if (Object.prototype.hasOwnProperty.call(variables, ref.name)) return variables[ref.name];
  if (ref.hasVariableDefault) return ref.variableDefault;
  return ref.argumentDefault;
}

/** What a field's written arguments cost with these variables (0 for most fields: they have none). */
export function argumentsCostOf(field: FieldPlan, variables: Variables): number {
  let sum = 0;
  for (const argument of field.arguments) sum += argument.cost.price(resolveRef(argument.ref, variables));
  return sum;
}

/** Whether a selection's conditions keep it; a condition whose value is not a boolean is ignored. */
export function isIncluded(conditions: Condition[], variables: Variables): boolean {
  let include = true;
  let skip = false;
  for (const condition of conditions) {
    const value = resolveRef(condition.ref, variables);
    if (typeof value !== 'boolean') continue;
    if (condition.isInclude) include = value;
    else skip = value;
  }
  return include && !skip;
}
