/**
 * Temporal test helpers: a quiet SDK runtime (errors only) so expected
 * activity failures do not flood the test output.
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';

let isInstalled = false;

/** Installs the Temporal runtime with an error-only logger, once per process. */
export function quietTemporalRuntime(): void {
  if (isInstalled) return;
  isInstalled = true;
  try {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
  } catch {
    // Already installed in this process by an earlier file: keep that one.
  }
}
