/**
 * Temporal test helpers: a quiet SDK runtime (errors only, core's native
 * logs included) so expected failures do not flood the test output.
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';

let isInstalled = false;

/** Installs the Temporal runtime with an error-only logger, once per process. */
export function quietTemporalRuntime(): void {
  if (isInstalled) return;
  isInstalled = true;
  try {
    // core's own logs too: fault tests kill servers, and core warns about every retried call
    Runtime.install({ logger: new DefaultLogger('ERROR'), telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' } } } });
  } catch {
    // Already installed in this process by an earlier file: keep that one.
  }
}
