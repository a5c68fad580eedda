/**
 * Static guards: caps that do not depend on variables, so they may run as a
 * validation rule (yoga caches validation per document). Depth, aliases and
 * node count are measured with fragments expanded (a fragment spread twice
 * counts twice), memoised per fragment so a document built to explode when
 * expanded is measured in linear time. Pure: no I/O.
 */
import { GraphQLError, Kind, type DocumentNode, type FragmentDefinitionNode, type SelectionSetNode, type ValidationRule } from 'graphql';

export interface StaticLimits {
  /** Deepest field nesting, fragments expanded. @default 15 */
  maxDepth?: number;
  /** Aliased fields per operation, fragments expanded. @default 30 */
  maxAliases?: number;
  /** Selections (fields, spreads, inline fragments) per operation, fragments expanded. @default 2000 */
  maxNodes?: number;
  /** Lexical tokens per document (checked while parsing). @default 5000 */
  maxTokens?: number;
  /** Operations per batched HTTP request. @default 10 */
  maxBatchSize?: number;
}

export const STATIC_LIMIT_DEFAULTS: Required<StaticLimits> = {
  maxDepth: 15,
  maxAliases: 30,
  maxNodes: 2_000,
  maxTokens: 5_000,
  maxBatchSize: 10,
};

/** Measures of one selection set with fragments expanded; each saturates at SATURATED. */
export interface Shape {
  depth: number;
  aliases: number;
  nodes: number;
}

const SATURATED = 1e9;
const add = (a: number, b: number): number => Math.min(SATURATED, a + b);

/** Measures every operation of a document (fragment cycles count as empty: validation rejects them). */
export function measureDocument(document: DocumentNode): Map<string | undefined, Shape> {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  const memo = new Map<string, Shape>();
  const visiting = new Set<string>();
  const EMPTY: Shape = { depth: 0, aliases: 0, nodes: 0 };

  const fragmentShape = (name: string): Shape => {
    const known = memo.get(name);
    if (known !== undefined) return known;
    const fragment = fragments.get(name);
    if (fragment === undefined || visiting.has(name)) return EMPTY;
    visiting.add(name);
    const shape = selectionShape(fragment.selectionSet);
    visiting.delete(name);
    memo.set(name, shape);
    return shape;
  };

  const selectionShape = (set: SelectionSetNode): Shape => {
    let depth = 0;
    let aliases = 0;
    let nodes = 0;
    for (const selection of set.selections) {
      let inner: Shape;
      if (selection.kind === Kind.FIELD) {
        const child = selection.selectionSet ? selectionShape(selection.selectionSet) : EMPTY;
        inner = { depth: child.depth + 1, aliases: add(child.aliases, selection.alias ? 1 : 0), nodes: child.nodes };
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        inner = selectionShape(selection.selectionSet);
      } else {
        inner = fragmentShape(selection.name.value);
      }
      depth = Math.max(depth, inner.depth);
      aliases = add(aliases, inner.aliases);
      nodes = add(nodes, add(inner.nodes, 1));
    }
    return { depth, aliases, nodes };
  };

  const shapes = new Map<string | undefined, Shape>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.OPERATION_DEFINITION) shapes.set(definition.name?.value, selectionShape(definition.selectionSet));
  }
  return shapes;
}

function guardError(code: string, message: string, details: Record<string, number>): GraphQLError {
  // spec: false keeps the 400 even for application/json clients (yoga would downgrade a spec error to 200).
  return new GraphQLError(message, { extensions: { code, ...details, http: { status: 400, spec: false } } });
}

/** The guard errors of one document (empty when it passes). */
export function checkStaticLimits(document: DocumentNode, limits: Required<StaticLimits>): GraphQLError[] {
  const errors: GraphQLError[] = [];
  for (const [name, shape] of measureDocument(document)) {
    const which = name === undefined ? 'the operation' : `operation ${name}`;
    if (shape.depth > limits.maxDepth) {
      errors.push(
        guardError('DEPTH_LIMIT_EXCEEDED', `${which} is nested ${shape.depth} deep; the maximum is ${limits.maxDepth}`, {
          depth: shape.depth,
          max: limits.maxDepth,
        }),
      );
    }
    if (shape.aliases > limits.maxAliases) {
      errors.push(
        guardError('ALIAS_LIMIT_EXCEEDED', `${which} uses ${shape.aliases} aliases; the maximum is ${limits.maxAliases}`, {
          aliases: shape.aliases,
          max: limits.maxAliases,
        }),
      );
    }
    if (shape.nodes > limits.maxNodes) {
      errors.push(
        guardError('NODE_LIMIT_EXCEEDED', `${which} selects ${shape.nodes} nodes; the maximum is ${limits.maxNodes}`, {
          nodes: shape.nodes,
          max: limits.maxNodes,
        }),
      );
    }
  }
  return errors;
}

/** The guards as a validation rule (cached per document by yoga, like every rule). */
export function staticLimitsRule(limits: Required<StaticLimits>): ValidationRule {
  return (context) => ({
    Document: {
      enter(document) {
        for (const error of checkStaticLimits(document, limits)) context.reportError(error);
        return false;
      },
    },
  });
}
