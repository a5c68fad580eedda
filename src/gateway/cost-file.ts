/**
 * Costs for a schema the operator cannot annotate: a cost file maps schema
 * coordinates to the IBM cost directives, and `applyCostFile` writes them into
 * the schema the gateway prices with (the upstream's own directives on the
 * same coordinates are replaced). YAML (or JSON), for example:
 *
 *   Query.books:                 # a field: its weight and list size
 *     weight: 1
 *     listSize: { slicingArguments: [first] }   # a request must give first (requireOneSlicingArgument)
 *   Query.shelves:               # a list priced at 50 when its slicing argument is left out
 *     listSize: { slicingArguments: [first], assumedSize: 50, requireOneSlicingArgument: false }
 *   Author:                      # a type: the weight of every field returning it
 *     weight: 3
 *
 * Validated whole at start: every problem is listed with its coordinate.
 */
import {
  Kind,
  buildSchema,
  getNamedType,
  getNullableType,
  isInputObjectType,
  isInterfaceType,
  isListType,
  isObjectType,
  isSpecifiedDirective,
  isSpecifiedScalarType,
  parse,
  print,
  printSchema,
  type ConstDirectiveNode,
  type DefinitionNode,
  type GraphQLField,
  type GraphQLSchema,
} from 'graphql';
import { parse as parseYaml } from 'yaml';
import { COST_DIRECTIVES_SDL } from '../graphql/index.js';
import { ValidationError } from '../shared/index.js';

/** The costs of one coordinate. */
export interface CoordinateCost {
  weight?: number;
  listSize?: { slicingArguments?: string[]; assumedSize?: number; requireOneSlicingArgument?: boolean };
}

/** A parsed cost file: coordinate (`Type` or `Type.field`) → costs. */
export type CostFile = ReadonlyMap<string, CoordinateCost>;

const MAX_WEIGHT = 1_000_000;
const COORDINATE = /^([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?$/;
const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const isCount = (value: unknown, max: number): value is number =>
  Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= max;

function listSizeProblems(at: string, raw: unknown, field: GraphQLField<unknown, unknown> | undefined): string[] {
  if (!isRecord(raw)) return [`${at}.listSize must be an object`];
  const problems: string[] = [];
  for (const key of Object.keys(raw)) {
    if (!['slicingArguments', 'assumedSize', 'requireOneSlicingArgument'].includes(key))
      problems.push(`${at}.listSize.${key} is not a list size setting`);
  }
  if (field === undefined) return [...problems, `${at}.listSize applies to a field, not a type`];
  if (!isListType(getNullableType(field.type)) && !('slicingArguments' in raw))
    problems.push(`${at}.listSize: the field does not return a list`);
  const slicing = raw['slicingArguments'];
  if (slicing !== undefined) {
    if (!Array.isArray(slicing) || slicing.some((name) => typeof name !== 'string'))
      problems.push(`${at}.listSize.slicingArguments must be a list of argument names`);
    else {
      for (const name of slicing as string[]) {
        const argument = field.args.find((candidate) => candidate.name === name);
        if (argument === undefined) problems.push(`${at}.listSize.slicingArguments: ${at} has no argument ${name}`);
        else if (getNamedType(argument.type).name !== 'Int') problems.push(`${at}.listSize.slicingArguments: ${name} is not an Int`);
      }
    }
  }
  if (raw['assumedSize'] !== undefined && !isCount(raw['assumedSize'], MAX_WEIGHT))
    problems.push(`${at}.listSize.assumedSize must be an integer in 0..${MAX_WEIGHT}`);
  if (raw['requireOneSlicingArgument'] !== undefined && typeof raw['requireOneSlicingArgument'] !== 'boolean') {
    problems.push(`${at}.listSize.requireOneSlicingArgument must be true or false`);
  }
  return problems;
}

function entryProblems(schema: GraphQLSchema, coordinate: string, raw: unknown): string[] {
  const match = COORDINATE.exec(coordinate);
  if (match === null) return [`${coordinate}: not a schema coordinate (Type or Type.field)`];
  const [, typeName = '', fieldName] = match;
  const type = schema.getType(typeName);
  if (type === undefined || isInputObjectType(type)) return [`${coordinate}: the schema has no output type ${typeName}`];
  const field = fieldName === undefined ? undefined : isObjectType(type) || isInterfaceType(type) ? type.getFields()[fieldName] : undefined;
  if (fieldName !== undefined && field === undefined) return [`${coordinate}: ${typeName} has no field ${fieldName}`];
  if (!isRecord(raw)) return [`${coordinate} must map to { weight, listSize }`];
  const problems = Object.keys(raw)
    .filter((key) => key !== 'weight' && key !== 'listSize')
    .map((key) => `${coordinate}.${key} is not a cost setting (weight, listSize)`);
  if (raw['weight'] !== undefined && !isCount(raw['weight'], MAX_WEIGHT))
    problems.push(`${coordinate}.weight must be an integer in 0..${MAX_WEIGHT}`);
  if (raw['listSize'] !== undefined) problems.push(...listSizeProblems(coordinate, raw['listSize'], field));
  return problems;
}

/**
 * Reads a cost file (YAML or JSON) against the schema it prices.
 * @throws ValidationError `INVALID_INPUT` listing every problem, one per line
 */
export function parseCostFile(text: string, schema: GraphQLSchema): CostFile {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    throw new ValidationError('INVALID_INPUT', `invalid cost file: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (!isRecord(raw)) throw new ValidationError('INVALID_INPUT', 'invalid cost file: it must map schema coordinates to costs');
  const problems = Object.entries(raw).flatMap(([coordinate, entry]) => entryProblems(schema, coordinate, entry));
  if (problems.length > 0)
    throw new ValidationError('INVALID_INPUT', `invalid cost file:\n${problems.join('\n')}`, { details: { problems } });
  return new Map(Object.entries(raw) as [string, CoordinateCost][]);
}

function directivesOf(cost: CoordinateCost): ConstDirectiveNode[] {
  const sdl: string[] = [];
  if (cost.weight !== undefined) sdl.push(`@cost(weight: ${cost.weight})`);
  if (cost.listSize !== undefined) {
    const args = Object.entries(cost.listSize).map(([name, value]) => `${name}: ${JSON.stringify(value)}`);
    sdl.push(`@listSize(${args.join(', ')})`);
  }
  const parsed = parse(`type T ${sdl.join(' ')} { f: Int }`).definitions[0];
  return parsed?.kind === Kind.OBJECT_TYPE_DEFINITION ? [...(parsed.directives ?? [])] : [];
}

function withDirectives(existing: readonly ConstDirectiveNode[] | undefined, added: ConstDirectiveNode[]): ConstDirectiveNode[] {
  const names = new Set(added.map((directive) => directive.name.value));
  return [...(existing ?? []).filter((directive) => !names.has(directive.name.value)), ...added];
}

/**
 * The schema as SDL with the directives applied in it: from its AST when it was built from SDL (`printSchema`
 * drops applied directives, so an upstream's own `@cost`/`@listSize` would be lost), else printed (an
 * introspected schema carries no applied directives to lose).
 */
function schemaSdl(schema: GraphQLSchema): string {
  const types = Object.values(schema.getTypeMap()).filter((type) => !type.name.startsWith('__') && !isSpecifiedScalarType(type));
  const directives = schema.getDirectives().filter((directive) => !isSpecifiedDirective(directive));
  const nodes = [
    ...(schema.astNode === undefined || schema.astNode === null ? [] : [schema.astNode]),
    ...directives.map((directive) => directive.astNode),
    ...types.flatMap((type) => [type.astNode, ...type.extensionASTNodes]),
  ];
  if (nodes.some((node) => node === undefined || node === null)) return printSchema(schema);
  return nodes.map((node) => print(node as NonNullable<(typeof nodes)[number]>)).join('\n\n');
}

/** The schema with the cost file's directives written in (the cost directives declared if missing). */
export function applyCostFile(schema: GraphQLSchema, costs: CostFile): GraphQLSchema {
  const declared = schema.getDirective('cost') !== undefined;
  const sdl = schemaSdl(schema);
  const document = parse(declared ? sdl : `${COST_DIRECTIVES_SDL}\n${sdl}`);
  const definitions = document.definitions.map((definition): DefinitionNode => {
    if (definition.kind !== Kind.OBJECT_TYPE_DEFINITION && definition.kind !== Kind.INTERFACE_TYPE_DEFINITION) return definition;
    const typeName = definition.name.value;
    const typeCost = costs.get(typeName);
    return {
      ...definition,
      ...(typeCost === undefined ? {} : { directives: withDirectives(definition.directives, directivesOf(typeCost)) }),
      fields: (definition.fields ?? []).map((field) => {
        const fieldCost = costs.get(`${typeName}.${field.name.value}`);
        return fieldCost === undefined ? field : { ...field, directives: withDirectives(field.directives, directivesOf(fieldCost)) };
      }),
    };
  });
  return buildSchema(print({ ...document, definitions }));
}
