/**
 * Temporal test helpers: a quiet SDK runtime (errors only, core's native
 * logs included) so expected failures do not flood the test output, and
 * copies of the workflow code for negative replay tests.
 */
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
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

const SRC_DIR = fileURLToPath(new URL('../../src/', import.meta.url));

/**
 * A copy of `src/workflows/workflows/` under `dataDir` that a negative replay
 * test may change, laid out like `src/` with the pure `model/` modules
 * workflows may import. @returns the copied workflows folder
 */
export function copyWorkflowsForReplay(dataDir: string, label: string): string {
  const root = join(dataDir, `${label}-${randomBytes(4).toString('hex')}`, 'src');
  const dir = join(root, 'workflows', 'workflows');
  mkdirSync(dir, { recursive: true });
  cpSync(join(SRC_DIR, 'workflows', 'workflows'), dir, { recursive: true });
  for (const area of readdirSync(SRC_DIR)) {
    const model = join(SRC_DIR, area, 'model');
    if (existsSync(model)) cpSync(model, join(root, area, 'model'), { recursive: true });
  }
  return dir;
}
