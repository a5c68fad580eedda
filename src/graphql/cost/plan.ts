/**
 * The cost formula of one operation, compiled once per document: a tree of the
 * selected fields with their cost parameters, where every slicing argument and
 * `@skip`/`@include` condition is resolved to a constant or a variable lookup.
 * Evaluating it with a request's variables walks that tree and does nothing
 * else (no AST visiting, no argument coercion, no directive reading), so a
 * repeated operation is priced in about a microsecond. Pure: no I/O.
 *
 * Semantics are exactly graphql-query-complexity's with `costDirectiveEstimator`
 * (sums over selections, the most expensive possible type for abstract types,
 * skip/include, fragments); `plan.prop.test.ts` checks that on random documents.
 *
 * The same tree measures the actual cost from the result: every size is
 * replaced by the number of items the resolvers returned.
 */
import {
  Kind,
  OperationTypeNode,
  getNamedType,
  isAbstractType,
  isCompositeType,
  valueFromAST,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLCompositeType,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValueNode,
  SchemaMetaFieldDef,
  TypeMetaFieldDef,
  TypeNameMetaFieldDef,
  isInterfaceType,
  isObjectType,
  typeFromAST,
  type DirectiveNode,
} from 'graphql';
import { COST_CAP, fieldCostOf, sliceSize, type CostModel, type FieldCost } from './model.js';

/** A value known at compile time, or read from the variables. */
type ValueRef =
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

interface Condition {
  /** true: `@include(if:)`; false: `@skip(if:)`. */
  isInclude: boolean;
  ref: ValueRef;
}

export interface FieldPlan {
  kind: 'field';
  responseKey: string;
  fieldName: string;
  cost: FieldCost;
  slicing: { name: string; ref: ValueRef }[];
  children: SelectionPlan | null;
}

interface FragmentPlan {
  kind: 'fragment';
  selection: SelectionPlan;
}

interface Entry {
  typeNames: readonly string[];
  conditions: Condition[];
  node: FieldPlan | FragmentPlan;
}

export interface SelectionPlan {
  entries: Entry[];
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
  /** The variables the formula reads (slicing arguments, skip/include). */
  variableNames: readonly string[];
}

type Variables = Readonly<Record<string, unknown>>;

function refOf(
  value: ValueNode | undefined,
  type: GraphQLInputType,
  argumentDefault: unknown,
  variableDefaults: Map<string, { hasDefault: boolean; value: unknown }>,
  used: Set<string>,
): ValueRef {
  if (value === undefined) return { kind: 'const', value: argumentDefault };
  if (value.kind === Kind.VARIABLE) {
    const name = value.name.value;
    used.add(name);
    const definition = variableDefaults.get(name);
    return {
      kind: 'var',
      name,
      variableDefault: definition?.value,
      hasVariableDefault: definition?.hasDefault ?? false,
      argumentDefault,
    };
  }
  return { kind: 'const', value: valueFromAST(value, type) };
}

function resolve(ref: ValueRef, variables: Variables): unknown {
  if (ref.kind === 'const') return ref.value;
  if (Object.prototype.hasOwnProperty.call(variables, ref.name)) return variables[ref.name];
  if (ref.hasVariableDefault) return ref.variableDefault;
  return ref.argumentDefault;
}

function isIncluded(conditions: Condition[], variables: Variables): boolean {
  let include = true;
  let skip = false;
  for (const condition of conditions) {
    const value = resolve(condition.ref, variables);
    if (typeof value !== 'boolean') continue;
    if (condition.isInclude) include = value;
    else skip = value;
  }
  return include && !skip;
}

class Compiler {
  private readonly fragments = new Map<string, FragmentDefinitionNode>();
  readonly used = new Set<string>();
  private readonly variableDefaults = new Map<string, { hasDefault: boolean; value: unknown }>();

  constructor(
    private readonly schema: GraphQLSchema,
    private readonly model: CostModel,
    document: DocumentNode,
    operation: OperationDefinitionNode,
  ) {
    for (const definition of document.definitions) {
      if (definition.kind === Kind.FRAGMENT_DEFINITION) this.fragments.set(definition.name.value, definition);
    }
    for (const definition of operation.variableDefinitions ?? []) {
      const type = typeFromAST(schema, definition.type) as GraphQLInputType | undefined;
      const hasDefault = definition.defaultValue !== undefined;
      this.variableDefaults.set(definition.variable.name.value, {
        hasDefault,
        value: hasDefault && type !== undefined ? valueFromAST(definition.defaultValue, type) : undefined,
      });
    }
  }

  private conditions(directives: readonly DirectiveNode[] | undefined): Condition[] {
    const conditions: Condition[] = [];
    for (const directive of directives ?? []) {
      const name = directive.name.value;
      if (name !== 'include' && name !== 'skip') continue;
      const argument = directive.arguments?.find((arg) => arg.name.value === 'if');
      if (argument === undefined) continue;
      const ref = refOf(argument.value, this.schema.getDirective(name)?.args[0]?.type as GraphQLInputType, undefined, this.variableDefaults, this.used);
      conditions.push({ isInclude: name === 'include', ref });
    }
    return conditions;
  }

  private possibleTypeNames(type: GraphQLCompositeType): string[] {
    return isAbstractType(type) ? this.schema.getPossibleTypes(type).map((possible) => possible.name) : [type.name];
  }

  selection(node: SelectionSetNode, type: GraphQLCompositeType, active: Set<string>): SelectionPlan {
    const entries: Entry[] = [];
    const ownTypes = this.possibleTypeNames(type);
    const fields = isObjectType(type) || isInterfaceType(type) ? type.getFields() : {};
    for (const child of node.selections) {
      const conditions = this.conditions(child.directives);
      switch (child.kind) {
        case Kind.FIELD: {
          const field = this.fieldDefinition(child, fields);
          if (field === undefined) break;
          entries.push({ typeNames: ownTypes, conditions, node: this.field(child, type, field, active) });
          break;
        }
        case Kind.FRAGMENT_SPREAD: {
          const name = child.name.value;
          const fragment = this.fragments.get(name);
          if (fragment === undefined || active.has(name)) break;
          const fragmentType = this.schema.getType(fragment.typeCondition.name.value);
          if (fragmentType === undefined || !isCompositeType(fragmentType)) break;
          active.add(name);
          const selection = this.selection(fragment.selectionSet, fragmentType, active);
          active.delete(name);
          entries.push({ typeNames: this.possibleTypeNames(fragmentType), conditions, node: { kind: 'fragment', selection } });
          break;
        }
        case Kind.INLINE_FRAGMENT: {
          const conditionType = child.typeCondition ? this.schema.getType(child.typeCondition.name.value) : type;
          if (conditionType === undefined || !isCompositeType(conditionType)) break;
          const selection = this.selection(child.selectionSet, conditionType, active);
          entries.push({ typeNames: this.possibleTypeNames(conditionType), conditions, node: { kind: 'fragment', selection } });
          break;
        }
      }
    }
    const first = entries[0]?.typeNames;
    const isSingleType =
      first !== undefined && first.length === 1 && entries.every((entry) => entry.typeNames.length === 1 && entry.typeNames[0] === first[0]);
    return { entries, isSingleType: isSingleType || entries.length === 0 };
  }

  private fieldDefinition(node: FieldNode, fields: Record<string, GraphQLField<unknown, unknown>>): GraphQLField<unknown, unknown> | undefined {
    switch (node.name.value) {
      case SchemaMetaFieldDef.name:
        return SchemaMetaFieldDef;
      case TypeMetaFieldDef.name:
        return TypeMetaFieldDef;
      case TypeNameMetaFieldDef.name:
        return TypeNameMetaFieldDef;
      default:
        return fields[node.name.value];
    }
  }

  private field(node: FieldNode, parent: GraphQLCompositeType, field: GraphQLField<unknown, unknown>, active: Set<string>): FieldPlan {
    const cost = this.model.fieldCost(parent.name, field);
    const slicing: FieldPlan['slicing'] = [];
    if (cost.sizing === 'list' || cost.sizing === 'connection') {
      for (const name of cost.slicingArguments) {
        const definition = field.args.find((arg) => arg.name === name);
        if (definition === undefined) continue;
        const argument = node.arguments?.find((arg) => arg.name.value === name);
        slicing.push({ name, ref: refOf(argument?.value, definition.type, definition.defaultValue, this.variableDefaults, this.used) });
      }
    }
    const named = getNamedType(field.type);
    const children = node.selectionSet && isCompositeType(named) ? this.selection(node.selectionSet, named, active) : null;
    return { kind: 'field', responseKey: node.alias?.value ?? node.name.value, fieldName: node.name.value, cost, slicing, children };
  }
}

/**
 * Compiles the cost formula of one operation of a valid document.
 * @throws Error when the operation does not exist (validate first)
 */
export function compileCostPlan(model: CostModel, document: DocumentNode, operation: OperationDefinitionNode): CostPlan {
  const schema = model.schema;
  const rootType =
    operation.operation === OperationTypeNode.QUERY
      ? schema.getQueryType()
      : operation.operation === OperationTypeNode.MUTATION
        ? schema.getMutationType()
        : schema.getSubscriptionType();
  if (rootType === null || rootType === undefined) throw new Error(`the schema has no ${operation.operation} type`);
  const compiler = new Compiler(schema, model, document, operation);
  const root = compiler.selection(operation.selectionSet, rootType, new Set());
  const rootFields = root.entries.flatMap((entry) => (entry.node.kind === 'field' ? [entry.node] : []));
  return {
    operationType: operation.operation,
    operationName: operation.name?.value,
    root,
    isDeferrable:
      operation.operation === OperationTypeNode.MUTATION &&
      rootFields.length > 0 &&
      root.entries.every((entry) => entry.node.kind === 'field' && entry.node.cost.isDeferrable),
    variableNames: [...compiler.used],
  };
}

function sizeOf(field: FieldPlan, variables: Variables, model: CostModel): number {
  if (field.cost.sizing !== 'list' && field.cost.sizing !== 'connection') return 1;
  const args: Record<string, unknown> = {};
  for (const { name, ref } of field.slicing) args[name] = resolve(ref, variables);
  return sliceSize(field.cost, args, model.options);
}

/** One line of a quote: a selected field and what it costs with its children. */
export interface CostLine {
  /** Response path, e.g. `products.edges.node.name`. */
  path: string;
  coordinate: string;
  weight: number;
  /** The size a list or connection multiplies by (1 otherwise). */
  size: number;
  /** This field with everything below it. */
  cost: number;
}

function evaluateSelection(
  selection: SelectionPlan,
  variables: Variables,
  model: CostModel,
  lines: CostLine[] | undefined,
  path: string,
): number {
  if (selection.isSingleType) {
    let sum = 0;
    for (const entry of selection.entries) {
      if (entry.conditions.length > 0 && !isIncluded(entry.conditions, variables)) continue;
      sum += evaluateNode(entry.node, variables, model, lines, path);
      if (sum > COST_CAP) sum = COST_CAP;
    }
    return sum > 0 ? sum : 0;
  }
  const perType = new Map<string, number>();
  for (const entry of selection.entries) {
    if (entry.conditions.length > 0 && !isIncluded(entry.conditions, variables)) continue;
    const value = evaluateNode(entry.node, variables, model, lines, path);
    for (const typeName of entry.typeNames) perType.set(typeName, Math.min(COST_CAP, (perType.get(typeName) ?? 0) + value));
  }
  let max = 0;
  for (const value of perType.values()) if (value > max) max = value;
  return max;
}

function evaluateNode(node: FieldPlan | FragmentPlan, variables: Variables, model: CostModel, lines: CostLine[] | undefined, path: string): number {
  if (node.kind === 'fragment') return evaluateSelection(node.selection, variables, model, lines, path);
  const size = sizeOf(node, variables, model);
  const fieldPath = path === '' ? node.responseKey : `${path}.${node.responseKey}`;
  const lineIndex = lines?.length ?? 0;
  lines?.push({ path: fieldPath, coordinate: node.cost.coordinate, weight: node.cost.weight, size, cost: 0 });
  const children = node.children === null ? 0 : evaluateSelection(node.children, variables, model, lines, fieldPath);
  const cost = fieldCostOf(node.cost, size, children);
  const line = lines?.[lineIndex];
  if (line !== undefined) line.cost = cost;
  return cost;
}

/**
 * The requested cost of a compiled operation with these (raw, JSON) variables.
 * @throws PricingError for a bad slicing argument
 */
export function evaluatePlan(plan: CostPlan, variables: Variables, model: CostModel): number {
  return evaluateSelection(plan.root, variables, model, undefined, '');
}

/**
 * The requested cost and one line per selected field (a quote).
 * @throws PricingError for a bad slicing argument
 */
export function explainPlan(plan: CostPlan, variables: Variables, model: CostModel): { cost: number; lines: CostLine[] } {
  const lines: CostLine[] = [];
  const cost = evaluateSelection(plan.root, variables, model, lines, '');
  return { cost, lines };
}

// ---- actual cost: the same tree over what the resolvers returned ----

function flatten(value: unknown, out: unknown[]): void {
  if (Array.isArray(value)) for (const item of value) flatten(item, out);
  else out.push(value);
}

function actualSelection(selection: SelectionPlan, data: Record<string, unknown>, variables: Variables): number {
  if (selection.isSingleType) {
    let sum = 0;
    for (const entry of selection.entries) {
      if (entry.conditions.length > 0 && !isIncluded(entry.conditions, variables)) continue;
      sum = Math.min(COST_CAP, sum + actualNode(entry.node, data, variables));
    }
    return sum;
  }
  const perType = new Map<string, number>();
  for (const entry of selection.entries) {
    if (entry.conditions.length > 0 && !isIncluded(entry.conditions, variables)) continue;
    const value = actualNode(entry.node, data, variables);
    for (const typeName of entry.typeNames) perType.set(typeName, Math.min(COST_CAP, (perType.get(typeName) ?? 0) + value));
  }
  let max = 0;
  for (const value of perType.values()) if (value > max) max = value;
  return max;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The number of items a connection returned: the longest of its selected sized fields. */
function connectionItems(selection: SelectionPlan, sized: ReadonlySet<string>, data: Record<string, unknown>, variables: Variables): number {
  let items = 0;
  for (const entry of selection.entries) {
    if (entry.conditions.length > 0 && !isIncluded(entry.conditions, variables)) continue;
    const node = entry.node;
    if (node.kind === 'fragment') {
      items = Math.max(items, connectionItems(node.selection, sized, data, variables));
    } else if (sized.has(node.fieldName)) {
      const value = data[node.responseKey];
      if (Array.isArray(value)) {
        const flat: unknown[] = [];
        flatten(value, flat);
        items = Math.max(items, flat.length);
      }
    }
  }
  return items;
}

/** A connection's selection: sized fields count each returned item, other fields once per item. */
function connectionSelection(
  selection: SelectionPlan,
  sized: ReadonlySet<string>,
  items: number,
  data: Record<string, unknown>,
  variables: Variables,
): number {
  let sum = 0;
  for (const entry of selection.entries) {
    if (entry.conditions.length > 0 && !isIncluded(entry.conditions, variables)) continue;
    const node = entry.node;
    const value =
      node.kind === 'fragment'
        ? connectionSelection(node.selection, sized, items, data, variables)
        : sized.has(node.fieldName)
          ? actualNode(node, data, variables)
          : items * actualNode(node, data, variables);
    sum = Math.min(COST_CAP, sum + value);
  }
  return sum;
}

/** What a returned object's selected children cost (no closure per call: this runs for every returned item). */
function childCost(node: FieldPlan, item: unknown, variables: Variables): number {
  return node.children !== null && isRecord(item) ? actualSelection(node.children, item, variables) : 0;
}

function actualNode(node: FieldPlan | FragmentPlan, data: Record<string, unknown>, variables: Variables): number {
  if (node.kind === 'fragment') return actualSelection(node.selection, data, variables);
  if (!Object.prototype.hasOwnProperty.call(data, node.responseKey)) return 0;
  const value = data[node.responseKey];
  const { cost } = node;
  switch (cost.sizing) {
    case 'none':
      return Math.min(COST_CAP, cost.weight + childCost(node, value, variables));
    case 'sized-child':
    case 'list': {
      // Each returned item costs weight + its children (a null list costs nothing).
      const items: unknown[] = [];
      if (value !== null && value !== undefined) flatten(value, items);
      let sum = 0;
      for (const item of items) sum = Math.min(COST_CAP, sum + cost.weight + childCost(node, item, variables));
      return sum;
    }
    case 'connection': {
      if (!isRecord(value) || node.children === null) return cost.weight;
      const sized = new Set(cost.sizedFields);
      const items = connectionItems(node.children, sized, value, variables);
      return Math.min(COST_CAP, cost.weight + connectionSelection(node.children, sized, items, value, variables));
    }
  }
}

/**
 * The actual cost of an executed operation: the formula with each list's size
 * replaced by the number of items returned. Equals the requested cost when
 * every list returns exactly its requested size; lower when fewer came back.
 */
export function measureActualCost(plan: CostPlan, data: unknown, variables: Variables): number {
  if (!isRecord(data)) return 0;
  return actualSelection(plan.root, data, variables);
}
