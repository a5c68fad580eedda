/**
 * `tollgate/metering`: the worker side. `createTollgateWorker` runs the
 * `meter/<shard>` pumps (usage stream → DynamoDB ledger), the audit, the
 * account and jobs-sweep workflows; `startMeterPumps` and
 * `startAccountWorkflows` ensure the fleet; `loadConfig` reads the same
 * environment variables as `npm start`.
 */
export * from '../workflows/index.js';
export { createLogger, loadConfig, type AppConfig, type Logger } from '../shared/index.js';
