/**
 * What a field's arguments cost (IBM cost spec §5.3.2.2, as Apollo Router applies it): an argument given a
 * non-null value adds its `@cost` weight; an input object value adds its weight (the `@cost` of the argument or
 * input field that holds it, else `inputObjectWeight`, 0 by default where the spec says 1) and what its given
 * fields cost, recursively; a list adds what each item costs. Arguments left out of the query cost nothing.
 * Pure: no I/O.
 */
import {
  getNullableType,
  isInputObjectType,
  isListType,
  type ConstDirectiveNode,
  type GraphQLArgument,
  type GraphQLInputType,
} from 'graphql';

/** A costed argument of a field: its name and what a value of it costs. */
export interface ArgumentCost {
  name: string;
  /** What this value (raw JSON from the variables, or coerced) costs; may be negative (the field's total is not). */
  price: (value: unknown) => number;
}

/** Reads the `@cost(weight:)` of an argument or input field's definition. */
export type WeightOf = (definition: { astNode?: { directives?: readonly ConstDirectiveNode[] } | null | undefined }) => number | undefined;

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Prices argument values for one schema; which input types can cost anything is computed once per type. */
export class InputCosts {
  private readonly mayCostByType = new Map<string, boolean>();

  constructor(
    private readonly weightOf: WeightOf,
    private readonly inputObjectWeight: number,
  ) {}

  /** The arguments of a field that can cost something (most fields have none). */
  argumentsOf(args: readonly GraphQLArgument[]): ArgumentCost[] {
    const costed: ArgumentCost[] = [];
    for (const argument of args) {
      const weight = this.weightOf(argument);
      if (weight === undefined && !this.mayCost(argument.type)) continue;
      costed.push({ name: argument.name, price: (value) => this.valueCost(weight, argument.type, value) });
    }
    return costed;
  }

  private mayCost(type: GraphQLInputType): boolean {
    const nullable = getNullableType(type);
    if (isListType(nullable)) return this.mayCost(nullable.ofType);
    if (!isInputObjectType(nullable)) return false;
    if (this.inputObjectWeight !== 0) return true;
    const known = this.mayCostByType.get(nullable.name);
    if (known !== undefined) return known;
    this.mayCostByType.set(nullable.name, false); // a cycle through this type adds nothing more
    const result = Object.values(nullable.getFields()).some((field) => this.weightOf(field) !== undefined || this.mayCost(field.type));
    this.mayCostByType.set(nullable.name, result);
    return result;
  }

  private valueCost(weight: number | undefined, type: GraphQLInputType, value: unknown): number {
    if (value === null || value === undefined) return 0;
    const nullable = getNullableType(type);
    if (isListType(nullable)) {
      const itemType = nullable.ofType;
      // a single value where a list is expected is coerced to a list of one
      if (!Array.isArray(value)) return this.valueCost(weight, itemType, value);
      let sum = 0;
      for (const item of value) sum += this.valueCost(weight, itemType, item);
      return sum;
    }
    if (isInputObjectType(nullable) && isRecord(value)) {
      let sum = weight ?? this.inputObjectWeight;
      for (const field of Object.values(nullable.getFields())) {
        if (Object.prototype.hasOwnProperty.call(value, field.name))
          sum += this.valueCost(this.weightOf(field), field.type, value[field.name]);
      }
      return sum;
    }
    return weight ?? 0;
  }
}
