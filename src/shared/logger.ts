/**
 * The logger type every module receives in its constructor, and the one
 * factory entry points use. Secrets never reach a log line: every object,
 * binding and message is redacted by `redact.ts` (by field name and by what
 * a string looks like), not by a list of paths.
 */
import { pino, type LoggerOptions, type Logger as PinoLogger } from 'pino';
import { redactLogObject, redactString } from './redact.js';

/** The structured-logging surface modules may use (a subset of pino's). */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

/** Creates the process logger (JSON lines on stdout); every object, binding and message goes through `redactValue`. */
export function createLogger(input: {
  level: LogLevel;
  name: string;
  /** Where lines go. @default stdout */
  destination?: { write(line: string): void };
}): Logger {
  const options: LoggerOptions = {
    name: input.name,
    level: input.level,
    formatters: {
      log: (object) => redactLogObject(object),
      bindings: (bindings) => redactLogObject(bindings),
    },
    hooks: {
      logMethod(args, method) {
        method.apply(this, args.map((arg: unknown) => (typeof arg === 'string' ? redactString(arg) : arg)) as Parameters<typeof method>);
      },
    },
  };
  return safeLogger(input.destination === undefined ? pino(options) : pino(options, input.destination));
}

/** pino's `child` writes its bindings as given: they are redacted here first. */
function safeLogger(logger: PinoLogger): Logger {
  return {
    debug: (object, msg) => logger.debug(object, msg),
    info: (object, msg) => logger.info(object, msg),
    warn: (object, msg) => logger.warn(object, msg),
    error: (object, msg) => logger.error(object, msg),
    child: (bindings) => safeLogger(logger.child(redactLogObject(bindings))),
  };
}
