/**
 * The only module that reads Redis error text (STYLE §4): reply prefixes are
 * Redis' stable error codes. Everything else branches on our own codes.
 */

/** The first word of a Redis error reply, e.g. `NOSCRIPT`, `CROSSSLOT`, `ERR_ARG`. */
export function redisErrorPrefix(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const match = /^([A-Z_]+)\b/.exec(error.message);
  return match?.[1];
}

/** True when a script rejected its arguments (`ERR_ARG <name>`): a caller bug, never retryable. */
export function isScriptArgumentError(error: unknown): boolean {
  return redisErrorPrefix(error) === 'ERR_ARG';
}
