/**
 * The API process, an entry point: `node --import tsx src/graphql/server.ts`
 * (or the built `dist/src/graphql/server.js`), or `tollgate gateway`, which
 * runs {@link runApiProcess} with its flags as variables. Reads config once, refuses a Redis that may
 * evict keys, serves HTTP (request bodies capped at `API_MAX_BODY_BYTES`), and
 * on SIGINT/SIGTERM stops accepting, drains, and closes its clients. Its steps are in `api-process.ts`.
 *
 * A failed start exits 1 with a one-line message.
 */
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { createLogger, loadConfig } from '../shared/index.js';
import { createProcessAdminApi, routeAdmin } from './admin-wiring.js';
import { JobsWorker, buildApiDeps, connectRedis, createProcessApi, listen, mountDashboard, stopOnSignals } from './api-process.js';
import { limitRequestBodies } from './body-limit.js';
import { chooseSurface } from './surface.js';

/**
 * Runs the API process over `env` until a signal stops it.
 * @throws ValidationError `CONFIG_INVALID` (every problem listed) or the error of the step that failed
 */
export async function runApiProcess(env: Record<string, string | undefined>): Promise<void> {
  const config = loadConfig(env);
  const logger = createLogger({ level: config.log.level, name: 'tollgate-api' });
  // the demo, or an upstream in gateway mode (its schema and cost file validated before anything connects)
  const surface = await chooseSurface({ config, logger });
  const redis = await connectRedis({ config, logger });
  const deps = await buildApiDeps({ config, logger, redis, surface });
  const jobsWorker = new JobsWorker(deps);
  await jobsWorker.start();
  // The demo tenants' accounts and account workflows, in demo mode unless API_DEMO_SEED=false (best effort).
  if (surface.kind === 'demo' && config.account.isEnabled && config.api.isDemoSeeded) {
    await surface.demo.setUpDemoAccounts({ config, dynamo: deps.dynamo, temporal: deps.temporal, logger });
  }
  // /admin/graphql: the admin API (its own schema and tokens) on the same port
  const admin = await createProcessAdminApi(deps);
  // bodies are capped before yoga reads them (413 REQUEST_TOO_LARGE, counted as a refusal)
  const handlers = limitRequestBodies(mountDashboard(deps, routeAdmin(admin, createProcessApi(deps).requestListener)), {
    maxBodyBytes: config.api.maxBodyBytes,
    onRefused: () => deps.metrics.refusals.inc({ code: 'REQUEST_TOO_LARGE' }),
  });
  const server = createServer(handlers.request).on('checkContinue', handlers.checkContinue);
  await listen(server, { config, logger });
  stopOnSignals({ server, deps, jobsWorker });
}

const isEntryPoint = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isEntryPoint) {
  runApiProcess(process.env).catch((error: unknown) => {
    console.error(`tollgate-api: failed to start: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
