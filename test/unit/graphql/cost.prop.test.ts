/**
 * Differential property: on random operations over the demo schema (aliases,
 * nested lists and connections, literal and variable slicing arguments with
 * and without defaults, skip/include, inline fragments on unions and
 * interfaces, named fragments), the compiled per-document formula prices
 * exactly what graphql-query-complexity does with the same estimator, and a
 * second evaluation of the cached formula with new variables still agrees.
 */
import fc from 'fast-check';
import {
  getNamedType,
  isAbstractType,
  isCompositeType,
  isInterfaceType,
  isObjectType,
  parse,
  validate,
  type GraphQLCompositeType,
  type GraphQLSchema,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import { PricingError, Pricer, engineCost } from '../../../src/graphql/index.js';
import { DemoStore, createDemoSchema } from '../../../src/graphql/demo/index.js';

const schema = createDemoSchema({
  store: new DemoStore(),
  version: 't',
  deciderTimeMs: () => Promise.resolve(0),
  clock: { nowMs: () => 0 },
});

/** mulberry32: a small deterministic PRNG driven by the property's seed. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Generated {
  query: string;
  variables: () => Record<string, unknown>;
}

function generate(seed: number, target: GraphQLSchema): Generated {
  const random = prng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const intVars: { name: string; hasDefault: boolean }[] = [];
  const boolVars: string[] = [];
  const fragments: string[] = [];
  let aliasCount = 0;

  const selection = (type: GraphQLCompositeType, depth: number): string => {
    const parts: string[] = [];
    if (isAbstractType(type)) {
      for (const possible of target.getPossibleTypes(type)) {
        if (random() < 0.6) parts.push(`... on ${possible.name} { ${selection(possible, depth)} }`);
      }
      if (isInterfaceType(type) && random() < 0.5) parts.push('id');
      parts.push('__typename');
      return parts.join(' ');
    }
    if (!isObjectType(type)) return '__typename';
    const fields = Object.values(type.getFields()).filter((field) => field.name !== 'quote' && field.name !== 'status');
    const count = 1 + Math.floor(random() * 3);
    for (let i = 0; i < count; i += 1) {
      const field = pick(fields);
      const named = getNamedType(field.type);
      if (isCompositeType(named) && depth >= 4) continue;
      const args: string[] = [];
      for (const arg of field.args) {
        if (arg.name === 'first') {
          const choice = random();
          if (choice < 0.35) args.push(`first: ${Math.floor(random() * 40)}`);
          else if (choice < 0.7) {
            const name = `n${intVars.length}`;
            intVars.push({ name, hasDefault: random() < 0.4 });
            args.push(`first: $${name}`);
          }
        } else if (String(arg.type).endsWith('!')) {
          args.push(arg.name === 'items' ? 'items: []' : arg.name === 'quantity' ? `${arg.name}: 1` : `${arg.name}: "x"`);
        }
      }
      let directive = '';
      if (random() < 0.2) {
        const name = `b${boolVars.length}`;
        boolVars.push(name);
        directive = ` @${random() < 0.5 ? 'include' : 'skip'}(if: $${name})`;
      }
      const alias = random() < 0.3 ? `a${(aliasCount += 1)}: ` : '';
      const head = `${alias}${field.name}${args.length > 0 ? `(${args.join(', ')})` : ''}${directive}`;
      if (isCompositeType(named)) {
        let body = selection(named, depth + 1);
        if (named.name === 'Product' && random() < 0.3) {
          const fragmentName = `F${fragments.length}`;
          fragments.push(`fragment ${fragmentName} on Product { ${selection(named, depth + 1)} }`);
          body = `${body} ...${fragmentName}`;
        }
        parts.push(`${head} { ${body} }`);
      } else {
        parts.push(head);
      }
    }
    return parts.length === 0 ? '__typename' : parts.join(' ');
  };

  const isMutation = random() < 0.15;
  const root = (isMutation ? target.getMutationType() : target.getQueryType()) as GraphQLCompositeType;
  const body = selection(root, 0);
  const definitions = [
    ...intVars.map((variable) => `$${variable.name}: Int${variable.hasDefault ? ` = ${Math.floor(random() * 30)}` : ''}`),
    ...boolVars.map((name) => `$${name}: Boolean!`),
  ];
  const query = `${isMutation ? 'mutation' : 'query'} Op${definitions.length > 0 ? `(${definitions.join(', ')})` : ''} { ${body} }\n${fragments.join('\n')}`;
  return {
    query,
    variables: () => {
      const values: Record<string, unknown> = {};
      for (const variable of intVars) {
        const choice = random();
        if (choice < 0.7) values[variable.name] = Math.floor(random() * 60);
        else if (choice < 0.85) values[variable.name] = null;
        // else: not provided (the variable default, else the argument default)
      }
      for (const name of boolVars) values[name] = random() < 0.5;
      return values;
    },
  };
}

let validCount = 0;
function outcome(run: () => number): number | string {
  try {
    return run();
  } catch (error) {
    if (error instanceof PricingError) return error.code;
    throw error;
  }
}

describe('compiled cost formula vs graphql-query-complexity', () => {
  it('agree on random operations and variables', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), (seed) => {
        const generated = generate(seed, schema);
        const document = parse(generated.query);
        // unused fragments or variables make a document invalid: only valid ones are priced
        if (validate(schema, document).length > 0) return;
        validCount += 1;
        const pricer = new Pricer(schema);
        for (let round = 0; round < 3; round += 1) {
          const variables = generated.variables();
          // both price it the same, or both refuse it with the same code (a null slicing argument: none given)
          const compiled = outcome(() => pricer.price({ document, variables, operationName: 'Op' }).cost);
          const engine = outcome(() => engineCost({ model: pricer.model, document, variables, operationName: 'Op' }));
          expect(compiled, `${generated.query}\n${JSON.stringify(variables)}`).toBe(engine);
        }
        expect(pricer.plan({ document, operationName: 'Op' }).isEngineOnly).toBe(false);
      }),
      { numRuns: 400 },
    );
    // most generated documents are valid, so the property is not vacuous
    expect(validCount).toBeGreaterThan(200);
  });
});
