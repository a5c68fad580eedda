/**
 * The logger type every module receives in its constructor, and the one
 * factory entry points use. Secrets never reach a log line: the redact list
 * covers the places they could travel (headers, keys, tokens).
 */
import { pino } from 'pino';

/** The structured-logging surface modules may use (a subset of pino's). */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

const REDACT_PATHS = [
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'apiKey',
  '*.apiKey',
  'token',
  '*.token',
  'secret',
  '*.secret',
  'password',
  '*.password',
];

/** Creates the process logger (JSON lines on stdout). */
export function createLogger(input: { level: LogLevel; name: string }): Logger {
  return pino({
    name: input.name,
    level: input.level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  });
}
