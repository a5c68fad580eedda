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

/**
 * True when a command was sent and its connection closed before the reply (ioredis flushes every
 * command in flight on that socket at once, STACK gotcha 13): Redis may or may not have run it.
 */
export function isLostConnection(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return error.name === 'MaxRetriesPerRequestError' || error.message === 'Connection is closed.';
}

/**
 * True when the connection's own command timeout (ioredis `commandTimeout`, DECIDER_MAX_WAIT_MS) ended the wait:
 * the wall-clock cap, however busy this process was; Redis may or may not have run the command.
 */
export function isCommandTimeout(error: unknown): boolean {
  return error instanceof Error && error.message === 'Command timed out';
}

/** True when Redis itself answered with an error reply (it is reachable; the command was wrong). */
export function isReplyError(error: unknown): boolean {
  return error instanceof Error && error.name === 'ReplyError';
}

/** True when a command was refused before it was sent because the connection is not ready (no offline queue). */
export function isNotConnected(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith("Stream isn't writeable");
}
