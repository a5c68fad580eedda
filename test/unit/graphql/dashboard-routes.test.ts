/**
 * `/dashboard` without the API's services (issue 18): a missing build answers 503 naming the build command, a build
 * made after the start is then served, with the CSP on every answer, long-cached hashed assets and a no-cache page.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DashboardRoutes, DashboardSessions } from '../../../src/graphql/dashboard/index.js';
import { createLogger, parseTrustedProxies, systemClock } from '../../../src/shared/index.js';

const dir = mkdtempSync(join(tmpdir(), 'dashboard-routes-'));
let server: Server;
let base: string;

beforeAll(async () => {
  // sessions are never reached by these paths: no Redis behind them
  const sessions = new DashboardSessions({
    redis: undefined as never,
    keyStore: undefined as never,
    adminTokens: undefined as never,
    clock: systemClock,
  });
  const routes = new DashboardRoutes({
    sessions,
    dir,
    logger: createLogger({ level: 'silent', name: 'test' }),
    clock: systemClock,
    trustedProxies: parseTrustedProxies(''),
  });
  server = createServer(
    routes.route((_req, res) => {
      res.writeHead(418);
      res.end();
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => {
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('/dashboard', () => {
  it('answers 503 naming the build command while there is no build, and leaves other paths to the API', async () => {
    const missing = await fetch(`${base}/dashboard`);
    expect(missing.status).toBe(503);
    expect(await missing.text()).toContain('vite build --config dashboard/vite.config.ts');
    expect(missing.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect((await fetch(`${base}/graphql`)).status).toBe(418);
    expect((await fetch(`${base}/dashboardx`)).status).toBe(418);
  });

  it('serves a build made after the start: the page no-cache, hashed assets immutable and compressed, unknown files 404', async () => {
    mkdirSync(join(dir, 'assets'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html><script type="module" src="/dashboard/assets/app-1.js"></script>');
    writeFileSync(join(dir, 'assets', 'app-1.js'), `console.log(${JSON.stringify('x'.repeat(2_000))});`);
    const page = await fetch(`${base}/dashboard/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('cache-control')).toBe('no-cache');
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    const asset = await fetch(`${base}/dashboard/assets/app-1.js`, { headers: { 'accept-encoding': 'br' } });
    expect(asset.headers.get('content-encoding')).toBe('br');
    expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(await asset.text()).toContain('xxxx');
    expect((await fetch(`${base}/dashboard/nope.js`)).status).toBe(404);
    expect((await fetch(`${base}/dashboard/`, { method: 'POST' })).status).toBe(405);
  });
});
