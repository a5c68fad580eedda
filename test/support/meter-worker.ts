/**
 * A tollgate worker process for crash tests: `node --import tsx test/support/meter-worker.ts`.
 * Config from the usual variables, plus:
 *   TOLLGATE_TEST_TASK_QUEUE        task queue to poll (required)
 *   TOLLGATE_TEST_WORKFLOW_BUNDLE   path of a prebuilt workflow bundle (saves bundling on every restart)
 *   TOLLGATE_TEST_CRASH_AT          a pump stage (e.g. `ledger-written`): the process SIGKILLs itself
 *                                   the first time any batch reaches it; or a workflow point reported
 *                                   by the interceptors of crash-interceptors.ts when the bundle has them
 *                                   (`continue-as-new`, `signal:<name>`): killed before that workflow
 *                                   task's completion reaches the server
 *   TOLLGATE_TEST_CRASH_ON_WEBHOOK  `1`: the process SIGKILLs itself when a warning webhook first accepted
 *                                   a POST, before the warning's record says delivered (mid-send)
 *   TOLLGATE_TEST_KEEP_CACHE        `1`: keep the configured workflow cache (WORKER_MAX_CACHED_WORKFLOWS),
 *                                   as the real worker does; otherwise none
 *   TOLLGATE_TEST_START_PUMPS       `1`: once polling, ensure the pump of every shard (DECIDER_SHARDS) on the
 *                                   task queue, as the real worker's start does; prints `pumps ensured`
 * Prints `ready` once the worker is created; `crash <stage> <shard>` (or `crash webhook <key>`) just before a self-kill.
 */
import { NativeConnection } from '@temporalio/worker';
import { createLogger, loadConfig } from '../../src/shared/index.js';
import { Client } from '@temporalio/client';
import { createTollgateWorker, startMeterPumps } from '../../src/workflows/index.js';
import { quietTemporalRuntime } from './temporal.js';

const config = loadConfig(process.env);
const taskQueue = process.env['TOLLGATE_TEST_TASK_QUEUE'];
if (taskQueue === undefined) throw new Error('TOLLGATE_TEST_TASK_QUEUE is required');
const bundlePath = process.env['TOLLGATE_TEST_WORKFLOW_BUNDLE'];
const crashAt = process.env['TOLLGATE_TEST_CRASH_AT'];
const shouldCrashOnWebhook = process.env['TOLLGATE_TEST_CRASH_ON_WEBHOOK'] === '1';
const shouldKeepCache = process.env['TOLLGATE_TEST_KEEP_CACHE'] === '1';
const shouldStartPumps = process.env['TOLLGATE_TEST_START_PUMPS'] === '1';

quietTemporalRuntime();
const connection = await NativeConnection.connect({ address: config.temporal.address });
const { worker, close } = await createTollgateWorker({
  config,
  connection,
  logger: createLogger({ level: 'silent', name: 'test-worker' }),
  taskQueue,
  ...(bundlePath === undefined ? {} : { workflowBundle: { codePath: bundlePath } }),
  // no workflow cache (unless kept): a restarted worker never waits for a dead worker's sticky queue
  workerOptions: {
    ...(shouldKeepCache ? {} : { maxCachedWorkflows: 0 }),
    sinks: {
      crashPoints: {
        reached: {
          fn: (_info: unknown, point: string) => {
            if (point !== crashAt) return;
            process.stdout.write(`crash ${point}\n`);
            process.kill(process.pid, 'SIGKILL');
          },
        },
      },
    },
  },
  onWebhookAccepted: (idempotencyKey) => {
    if (!shouldCrashOnWebhook) return;
    process.stdout.write(`crash webhook ${idempotencyKey}\n`);
    process.kill(process.pid, 'SIGKILL');
  },
  onPumpStage: (stage, shard) => {
    if (stage !== crashAt) return;
    process.stdout.write(`crash ${stage} ${shard}\n`);
    process.kill(process.pid, 'SIGKILL');
  },
});
process.stdout.write('ready\n');
const running = worker.run();
if (shouldStartPumps) {
  await startMeterPumps({ config, client: new Client({ connection, namespace: config.temporal.namespace }), taskQueue });
  process.stdout.write('pumps ensured\n');
}
try {
  await running;
} finally {
  close();
  await connection.close();
}
process.exit(0);
