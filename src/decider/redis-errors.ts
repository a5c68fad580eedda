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

/** Redis' clock carried by `ERR_STALE_PERIOD <nowMs>`, or undefined for any other error. */
export function stalePeriodNowMs(error: unknown): number | undefined {
  if (redisErrorPrefix(error) !== 'ERR_STALE_PERIOD') return undefined;
  const nowMs = Number(/^ERR_STALE_PERIOD (\d+)/.exec((error as Error).message)?.[1]);
  return Number.isSafeInteger(nowMs) ? nowMs : undefined;
}
