/**
 * The Temporal worker process: `node --import tsx src/workflows/worker.ts`
 * (or `node dist/src/workflows/worker.js`). Reads config once, polls the
 * configured task queue, and stops cleanly on SIGINT/SIGTERM (the SDK's
 * runtime installs those handlers and drains in-flight tasks).
 *
 * A failed start exits non-zero: a failed Worker.create would otherwise keep
 * the process alive without polling.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker } from '@temporalio/worker';
import { DependencyError, createLogger, loadConfig, type AppConfig, type Logger } from '../shared/index.js';
import { DynamoLedgerStore, createDynamoClient } from '../metering/index.js';
import { createLedgerActivities } from './activities/index.js';

/** Path of the workflow bundle's entry, next to this file (.ts in dev, .js when built). */
export function workflowsPath(): string {
  const ts = fileURLToPath(new URL('./workflows/index.ts', import.meta.url));
  return existsSync(ts) ? ts : fileURLToPath(new URL('./workflows/index.js', import.meta.url));
}

export interface TollgateWorkerInput {
  config: Pick<AppConfig, 'temporal' | 'dynamodb'>;
  connection: NativeConnection;
  logger: Logger;
  /** Overrides the task queue (tests use one per file). */
  taskQueue?: string;
}

/** Creates (but does not run) a worker with every tollgate workflow and activity. */
export async function createTollgateWorker(input: TollgateWorkerInput): Promise<{ worker: Worker; close: () => void }> {
  const dynamo = createDynamoClient({ endpoint: input.config.dynamodb.endpoint, region: input.config.dynamodb.region });
  const ledger = new DynamoLedgerStore(dynamo, { tablePrefix: input.config.dynamodb.tablePrefix });
  const worker = await Worker.create({
    connection: input.connection,
    namespace: input.config.temporal.namespace,
    taskQueue: input.taskQueue ?? input.config.temporal.taskQueue,
    workflowsPath: workflowsPath(),
    activities: { ...createLedgerActivities({ ledger }) },
  });
  return { worker, close: () => dynamo.destroy() };
}

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger({ level: config.log.level, name: 'tollgate-worker' });
  let connection: NativeConnection;
  try {
    connection = await NativeConnection.connect({ address: config.temporal.address });
  } catch (error) {
    throw new DependencyError('TEMPORAL_UNAVAILABLE', `Temporal at ${config.temporal.address} is unreachable; check TEMPORAL_ADDRESS`, {
      cause: error,
    });
  }
  const { worker, close } = await createTollgateWorker({ config, connection, logger });
  logger.info({ taskQueue: config.temporal.taskQueue, namespace: config.temporal.namespace }, 'worker polling');
  try {
    await worker.run();
  } finally {
    close();
    await connection.close();
  }
  logger.info({}, 'worker stopped');
}

const isEntryPoint = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isEntryPoint) {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(`tollgate-worker: failed to start or run: ${error instanceof Error ? error.message : String(error)}`);
      process.exit(1);
    },
  );
}
