/**
 * The gateway mode's variables (`TOLLGATE_UPSTREAM` and the rest), part of the one configuration schema
 * (`config-schema.ts` spreads them in): the upstream, its schema and cost file, what is forwarded, how
 * failures are charged, how long `/ready` reuses its check of the upstream.
 */
import { z } from 'zod';

const positiveInt = z.coerce.number().int().positive();

/** An HTTP header name (RFC 9110 token), lower-cased. */
const headerName = z
  .string()
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be an HTTP header name (letters, digits, - and the like)')
  .transform((raw) => raw.toLowerCase());

/** Comma-separated HTTP header names, lower-cased (empty: none). */
const headerNameList = z.string().transform((raw, ctx) => {
  const names = raw
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
  for (const name of names) {
    if (!headerName.safeParse(name).success) ctx.addIssue({ code: 'custom', message: `'${name}' is not an HTTP header name` });
  }
  return names.map((name) => name.toLowerCase());
});

const httpUrl = z.string().refine((raw) => {
  try {
    const url = new URL(raw);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}, 'must be an http:// or https:// URL');

/** The gateway mode's variables, in the order the README lists them. */
export const GATEWAY_CONFIG_FIELDS = {
  TOLLGATE_UPSTREAM: httpUrl
    .optional()
    .describe(
      'Gateway mode: the GraphQL endpoint of the upstream server the API forwards admitted operations to (its schema, its execution, tollgate in front). Unset: the API serves the demo schema.',
    ),
  TOLLGATE_UPSTREAM_SCHEMA: z
    .string()
    .min(1)
    .optional()
    .describe(
      "Gateway mode: the upstream's SDL file (with its @cost/@listSize), pinned: a live upstream schema that no longer serves it is reported at start and by /ready. Unset: the schema is introspected at start.",
    ),
  TOLLGATE_COSTS: z
    .string()
    .min(1)
    .optional()
    .describe('Gateway mode: a cost file (YAML or JSON: schema coordinate → weight, listSize) applied over the upstream schema.'),
  TOLLGATE_UPSTREAM_TIMEOUT_MS: positiveInt
    .max(300_000)
    .default(10_000)
    .describe('Gateway mode: how long one forwarded operation may take, ms; past it the client gets 504 UPSTREAM_TIMEOUT.'),
  TOLLGATE_UPSTREAM_FAILURE_CHARGE: z
    .enum(['minimum', 'reserved'])
    .default('minimum')
    .describe(
      "Gateway mode: what an operation the upstream failed (timeout, unreachable, 5xx) is charged: 'minimum' (the operation's minimum cost) or 'reserved' (the cost reserved before forwarding).",
    ),
  TOLLGATE_FORWARD_HEADERS: headerNameList
    .default(['accept-language'])
    .describe(
      'Gateway mode: comma-separated request headers passed to the upstream (all others, the API key and cookies among them, are not).',
    ),
  TOLLGATE_TENANT_HEADER: headerName
    .optional()
    .describe("Gateway mode: request header under which the caller's tenant id is passed to the upstream (unset: not passed)."),
  TOLLGATE_KEY_ID_HEADER: headerName
    .optional()
    .describe(
      "Gateway mode: request header under which the caller's API key id (never the key) is passed to the upstream (unset: not passed).",
    ),
  TOLLGATE_READY_CACHE_MS: z.coerce
    .number()
    .int()
    .min(0)
    .max(600_000)
    .default(5_000)
    .describe(
      "Gateway mode: how long /ready reuses its last check of the upstream's schema (one introspection per period however often /ready is called), ms.",
    ),
};
