/**
 * The actual cost of an executed operation: the compiled plan's formula (see
 * `plan.ts`) walked over what the resolvers returned, with every list's size
 * replaced by the number of items that came back. Pure: no I/O.
 */
import { COST_CAP } from './model.js';
import {
  argumentsCostOf,
  isIncluded,
  type CostPlan,
  type FieldPlan,
  type FragmentPlan,
  type SelectionPlan,
  type Variables,
} from './plan-tree.js';

/** A returned connection: its sized fields, its object in the result, and how many items it returned. */
interface ConnectionScope {
  sized: ReadonlySet<string>;
  data: Record<string, unknown>;
  items: number;
}

function flatten(value: unknown, out: unknown[]): void {
  if (Array.isArray(value)) for (const item of value) flatten(item, out);
  else out.push(value);
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** One measurement: the walk reads the request's variables for `@skip`/`@include`. */
class ActualCostWalk {
  constructor(private readonly variables: Variables) {}

  selection(selection: SelectionPlan, data: Record<string, unknown>): number {
    if (selection.isSingleType) {
      let sum = 0;
      for (const entry of selection.entries) {
        if (entry.conditions.length > 0 && !isIncluded(entry.conditions, this.variables)) continue;
        sum = Math.min(COST_CAP, sum + this.node(entry.node, data));
      }
      return sum;
    }
    const perType = new Map<string, number>();
    for (const entry of selection.entries) {
      if (entry.conditions.length > 0 && !isIncluded(entry.conditions, this.variables)) continue;
      const value = this.node(entry.node, data);
      for (const typeName of entry.typeNames) perType.set(typeName, Math.min(COST_CAP, (perType.get(typeName) ?? 0) + value));
    }
    let max = 0;
    for (const value of perType.values()) if (value > max) max = value;
    return max;
  }

  node(node: FieldPlan | FragmentPlan, data: Record<string, unknown>): number {
    if (node.kind === 'fragment') return this.selection(node.selection, data);
    if (!Object.prototype.hasOwnProperty.call(data, node.responseKey)) return 0;
    const own = this.returned(node, data);
    // the arguments of a returned field cost once, as in the requested cost (never below 0)
    return node.arguments.length === 0 ? own : Math.max(0, Math.min(COST_CAP, own + argumentsCostOf(node, this.variables)));
  }

  private returned(node: FieldPlan, data: Record<string, unknown>): number {
    const value = data[node.responseKey];
    const { cost } = node;
    switch (cost.sizing) {
      case 'none':
        return Math.min(COST_CAP, cost.weight + this.childCost(node, value));
      case 'sized-child':
      case 'list': {
        // Each returned item costs weight + its children (a null list costs nothing).
        const items: unknown[] = [];
        if (value !== null && value !== undefined) flatten(value, items);
        let sum = 0;
        for (const item of items) sum = Math.min(COST_CAP, sum + cost.weight + this.childCost(node, item));
        return sum;
      }
      case 'connection': {
        if (!isRecord(value) || node.children === null) return cost.weight;
        const scope: ConnectionScope = { sized: new Set(cost.sizedFields), data: value, items: 0 };
        scope.items = this.connectionItems(node.children, scope);
        return Math.min(COST_CAP, cost.weight + this.connectionSelection(node.children, scope));
      }
    }
  }

  /** What a returned object's selected children cost (no closure per call: this runs for every returned item). */
  private childCost(node: FieldPlan, item: unknown): number {
    return node.children !== null && isRecord(item) ? this.selection(node.children, item) : 0;
  }

  /** The number of items a connection returned: the longest of its selected sized fields. */
  private connectionItems(selection: SelectionPlan, scope: ConnectionScope): number {
    let items = 0;
    for (const entry of selection.entries) {
      if (entry.conditions.length > 0 && !isIncluded(entry.conditions, this.variables)) continue;
      const node = entry.node;
      if (node.kind === 'fragment') {
        items = Math.max(items, this.connectionItems(node.selection, scope));
      } else if (scope.sized.has(node.fieldName)) {
        const value = scope.data[node.responseKey];
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
  private connectionSelection(selection: SelectionPlan, scope: ConnectionScope): number {
    let sum = 0;
    for (const entry of selection.entries) {
      if (entry.conditions.length > 0 && !isIncluded(entry.conditions, this.variables)) continue;
      const node = entry.node;
      const value =
        node.kind === 'fragment'
          ? this.connectionSelection(node.selection, scope)
          : scope.sized.has(node.fieldName)
            ? this.node(node, scope.data)
            : scope.items * this.node(node, scope.data);
      sum = Math.min(COST_CAP, sum + value);
    }
    return sum;
  }
}

/**
 * The actual cost of an executed operation: the formula with each list's size
 * replaced by the number of items returned. Equals the requested cost when
 * every list returns exactly its requested size; lower when fewer came back.
 */
export function measureActualCost(plan: CostPlan, data: unknown, variables: Variables): number {
  if (!isRecord(data)) return 0;
  const cost = new ActualCostWalk(variables).selection(plan.root, data);
  // the operation's base (a mutation's) is paid once the operation ran
  return plan.baseCost === 0 ? cost : Math.min(COST_CAP, cost + plan.baseCost);
}
