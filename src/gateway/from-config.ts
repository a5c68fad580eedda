/**
 * The gateway as a process configures it (`TOLLGATE_UPSTREAM` and the other
 * `TOLLGATE_*` variables, or the `tollgate gateway` command's flags): the
 * upstream's schema from the pinned SDL file or by introspection, the cost file
 * written over it, and the parts a server mounts. Validated whole at start:
 * every problem of the schema file and the cost file is listed, and nothing
 * starts. A pinned schema the live upstream no longer serves is reported at
 * start (and by `/ready`), not refused: the upstream may be deployed next.
 */
import { readFileSync } from 'node:fs';
import type { GraphQLSchema } from 'graphql';
import { ValidationError, type GatewayConfig, type Logger } from '../shared/index.js';
import { applyCostFile, parseCostFile } from './cost-file.js';
import { checkUpstreamSchema, gatewayParts, introspectUpstream, upstreamSchemaFromSdl, type GatewayParts } from './gateway.js';
import type { UpstreamOptions } from './upstream.js';

/** A file's text, or a problem naming it. */
function readText(path: string, what: string): { text: string } | { problem: string } {
  try {
    return { text: readFileSync(path, 'utf8') };
  } catch (error) {
    const reason = error instanceof Error && 'code' in error ? String(error.code) : 'unreadable';
    return { problem: `${what} ${path}: cannot be read (${reason})` };
  }
}

/** The problems of an error thrown by the schema or cost file readers, one per line. */
function problemsOf(error: unknown, what: string): string[] {
  if (!(error instanceof ValidationError)) throw error;
  const listed = error.details['problems'];
  if (Array.isArray(listed)) return listed.map((problem) => `${what}: ${String(problem)}`);
  return [`${what}: ${error.message}`];
}

/** The upstream's options as the config names them. */
export function upstreamOptions(config: GatewayConfig): UpstreamOptions {
  return { url: config.upstreamUrl, timeoutMs: config.timeoutMs, forwardHeaders: config.forwardHeaders };
}

/**
 * The schema the gateway validates and prices with: the pinned SDL (or the introspected one) with the cost file applied.
 * @throws ValidationError `CONFIG_INVALID` listing every problem of the schema file and the cost file
 * @throws DependencyError `UPSTREAM_UNAVAILABLE` when there is no pinned schema and the upstream does not answer introspection
 */
export async function loadGatewaySchema(config: GatewayConfig): Promise<GraphQLSchema> {
  const problems: string[] = [];
  let schema: GraphQLSchema | undefined;
  if (config.schemaFile !== undefined) {
    const sdl = readText(config.schemaFile, 'schema file');
    if ('problem' in sdl) problems.push(sdl.problem);
    else {
      try {
        schema = upstreamSchemaFromSdl(sdl.text);
      } catch (error) {
        problems.push(...problemsOf(error, `schema file ${config.schemaFile}`));
      }
    }
  } else {
    schema = await introspectUpstream(upstreamOptions(config));
  }
  const costs = config.costsFile === undefined ? undefined : readText(config.costsFile, 'cost file');
  if (costs !== undefined && 'problem' in costs) problems.push(costs.problem);
  if (schema !== undefined && costs !== undefined && 'text' in costs) {
    try {
      schema = applyCostFile(schema, parseCostFile(costs.text, schema));
    } catch (error) {
      problems.push(...problemsOf(error, `cost file ${config.costsFile ?? ''}`));
    }
  }
  if (problems.length > 0 || schema === undefined)
    throw new ValidationError('CONFIG_INVALID', `invalid gateway configuration:\n${problems.join('\n')}`, { details: { problems } });
  return schema;
}

/**
 * The gateway's parts from its config; with a pinned schema, checks once whether the live upstream serves it
 * and logs what drifted (or that it does not answer).
 * @throws as {@link loadGatewaySchema}
 */
export async function gatewayFromConfig(config: GatewayConfig, logger: Logger): Promise<GatewayParts> {
  const schema = await loadGatewaySchema(config);
  const upstream = upstreamOptions(config);
  if (config.schemaFile !== undefined) {
    const check = await checkUpstreamSchema(schema, upstream);
    if (!check.isReady && check.code === 'UPSTREAM_SCHEMA_DRIFT')
      logger.error({ code: check.code, changes: check.changes }, 'the upstream no longer serves the pinned schema; /ready answers 503');
    if (!check.isReady && check.code === 'UPSTREAM_UNAVAILABLE')
      logger.warn(
        { code: check.code, upstream: config.upstreamUrl.replace(/\/\/[^@/]*@/, '//***@') },
        'the upstream does not answer; /ready answers 503 until it does',
      );
  }
  return gatewayParts({
    schema,
    upstream,
    identityHeaders: config.identityHeaders,
    failureCharge: config.failureCharge,
    readyCacheMs: config.readyCacheMs,
  });
}
