/**
 * The built dashboard (`vite build` → `dist/dashboard/`), read from disk on first request and kept in
 * memory with its gzip and brotli forms. A missing build is not an error of the API: `/dashboard`
 * answers 503 naming the build command, and the next request looks again (a build made after the
 * start is picked up).
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, gzipSync } from 'node:zlib';

export interface StaticFile {
  body: Buffer;
  gzip: Buffer | undefined;
  brotli: Buffer | undefined;
  type: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
};

/** Where the build is: `dist/dashboard/` of the repo (run from `src/graphql/dashboard` or `dist/src/graphql/dashboard`). */
export function defaultDashboardDir(): string {
  const candidates = ['../../../dist/dashboard/', '../../../dashboard/'].map((path) => fileURLToPath(new URL(path, import.meta.url)));
  return candidates.find((dir) => existsSync(join(dir, 'index.html'))) ?? (candidates[0] as string);
}

function walk(dir: string, prefix = ''): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path, `${prefix}${name}/`) : [`${prefix}${name}`];
  });
}

/** Every file of the build by its path under `/dashboard/`, or undefined when there is no build. */
export function loadDashboard(dir: string): Map<string, StaticFile> | undefined {
  if (!existsSync(join(dir, 'index.html'))) return undefined;
  const files = new Map<string, StaticFile>();
  for (const path of walk(dir)) {
    const body = readFileSync(join(dir, path));
    const type = TYPES[extname(path)] ?? 'application/octet-stream';
    const isText = type.startsWith('text/') || type === 'image/svg+xml' || type === 'application/json';
    files.set(path, {
      body,
      type,
      gzip: isText && body.length > 512 ? gzipSync(body, { level: 9 }) : undefined,
      brotli: isText && body.length > 512 ? brotliCompressSync(body) : undefined,
    });
  }
  return files;
}
