/**
 * The API process, an entry point that exports nothing:
 * `node --import tsx src/graphql/server.ts` (or the built
 * `dist/src/graphql/server.js`). Reads config once, refuses a Redis that may
 * evict keys, serves HTTP (request bodies capped at `API_MAX_BODY_BYTES`), and
 * on SIGINT/SIGTERM stops accepting, drains, and closes its clients. Its steps are in `api-process.ts`.
 *
 * A failed start exits 1 with a one-line message.
 */
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { createLogger, loadConfig } from '../shared/index.js';
import { JobsWorker, buildApiDeps, connectRedis, createProcessApi, listen, stopOnSignals } from './api-process.js';
import { limitRequestBodies } from './body-limit.js';
import { setUpDemoAccounts } from './demo/index.js';

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger({ level: config.log.level, name: 'tollgate-api' });
  const redis = await connectRedis({ config, logger });
  const deps = await buildApiDeps({ config, logger, redis });
  const jobsWorker = new JobsWorker(deps);
  await jobsWorker.start();
  // The demo tenants' accounts and account workflows, unless API_DEMO_SEED=false (best effort).
  if (config.account.isEnabled && config.api.isDemoSeeded) {
    await setUpDemoAccounts({ config, dynamo: deps.dynamo, temporal: deps.temporal, logger });
  }
  // bodies are capped before yoga reads them (413 REQUEST_TOO_LARGE, counted as a refusal)
  const handlers = limitRequestBodies(createProcessApi(deps).requestListener, {
    maxBodyBytes: config.api.maxBodyBytes,
    onRefused: () => deps.metrics.refusals.inc({ code: 'REQUEST_TOO_LARGE' }),
  });
  const server = createServer(handlers.request).on('checkContinue', handlers.checkContinue);
  await listen(server, { config, logger });
  stopOnSignals({ server, deps, jobsWorker });
}

const isEntryPoint = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isEntryPoint) {
  main().catch((error: unknown) => {
    console.error(`tollgate-api: failed to start: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
