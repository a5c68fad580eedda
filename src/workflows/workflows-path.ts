import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Path of the workflow bundle's entry, next to this file (.ts in dev, .js when built). */
export function workflowsPath(): string {
  const ts = fileURLToPath(new URL('./workflows/index.ts', import.meta.url));
  return existsSync(ts) ? ts : fileURLToPath(new URL('./workflows/index.js', import.meta.url));
}
