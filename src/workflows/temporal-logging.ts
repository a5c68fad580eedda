/**
 * The Temporal SDK's own log lines (worker state, activity and workflow task failures, the `log` calls of
 * workflow code, and the native core's warnings) go through the process logger, so they are JSON lines like
 * every other and pass the same redaction (an activity failure's message and cause chain can carry whatever
 * the failed call said). Installed once per process, before the first worker or native connection.
 */
import { Runtime, type LogLevel as TemporalLevel, type LogMetadata, type Logger as TemporalLogger } from '@temporalio/worker';
import type { Logger } from '../shared/index.js';

function adapter(logger: Logger): TemporalLogger {
  const write = (level: TemporalLevel, message: string, meta?: LogMetadata): void => {
    const object = { component: 'temporal', ...meta };
    if (level === 'ERROR') logger.error(object, message);
    else if (level === 'WARN') logger.warn(object, message);
    else if (level === 'INFO') logger.info(object, message);
    else logger.debug(object, message);
  };
  return {
    log: write,
    trace: (message, meta) => write('TRACE', message, meta),
    debug: (message, meta) => write('DEBUG', message, meta),
    info: (message, meta) => write('INFO', message, meta),
    warn: (message, meta) => write('WARN', message, meta),
    error: (message, meta) => write('ERROR', message, meta),
  };
}

let installed = false;

/**
 * Routes the SDK's logs (and the native core's, at WARN and above) to `logger`. Call before creating any
 * worker or native connection; later calls in the same process do nothing.
 * @returns false when a Temporal runtime already existed (its logs keep going where it was set up to send them)
 */
export function routeTemporalLogs(logger: Logger): boolean {
  if (installed) return true;
  try {
    Runtime.install({ logger: adapter(logger), telemetryOptions: { logging: { filter: { core: 'WARN', other: 'ERROR' }, forward: {} } } });
    installed = true;
  } catch {
    return false;
  }
  return true;
}
