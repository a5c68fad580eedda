/**
 * The dashboard's build for `npm start` and the browser tests: `vite build` of `dashboard/` into `dist/dashboard/`,
 * run only when the build is missing or older than a source (one stat per source file: milliseconds).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './services.js';

function newestMtime(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(stat.mtimeMs, ...readdirSync(path).map((name) => newestMtime(join(path, name))));
}

/** Whether `dist/dashboard` is missing or older than `dashboard/`. */
export function isDashboardStale(): boolean {
  const index = join(REPO_ROOT, 'dist', 'dashboard', 'index.html');
  return !existsSync(index) || statSync(index).mtimeMs < newestMtime(join(REPO_ROOT, 'dashboard'));
}

/** Builds the dashboard when stale; true when it built. @throws Error with vite's output when the build fails */
export function ensureDashboardBuilt(): boolean {
  if (!isDashboardStale()) return false;
  try {
    execFileSync(
      process.execPath,
      [join(REPO_ROOT, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--config', 'dashboard/vite.config.ts'],
      {
        cwd: REPO_ROOT,
        stdio: 'pipe',
      },
    );
  } catch (error) {
    const output = (error as { stderr?: Buffer; stdout?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`the dashboard build failed (npx vite build --config dashboard/vite.config.ts):\n${output}`, { cause: error });
  }
  return true;
}
