/**
 * The real API process (spawned as `npm start` runs it) and a meter worker process pumping its tenant's shard into
 * the test stack's ledger: what a test of the usage surfaces (series, receipts, replay) reads back.
 */
import { Client, Connection } from '@temporalio/client';
import { ensureMeterWorkflows } from '../../src/workflows/index.js';
import { LOGICAL_SHARDS } from './allocate.js';
import { startApiServer, type ApiServer } from './api-server.js';
import { testStack } from './stack.js';
import { killWorkerProcesses, startWorkerProcess } from './worker-process.js';

export interface MeteredApi {
  api: ApiServer;
  stop(): Promise<void>;
}

/** Starts the API process and a worker whose pump drains `shard` every 200 ms when idle. */
export async function startMeteredApi(input: { scratch: string; shard: number; taskQueue: string }): Promise<MeteredApi> {
  const stack = testStack();
  const api = await startApiServer({ scratch: input.scratch, env: { DECIDER_SHARDS: String(LOGICAL_SHARDS) } });
  const temporal = await Connection.connect({ address: stack.temporalAddress });
  startWorkerProcess({ TOLLGATE_TEST_TASK_QUEUE: input.taskQueue, DECIDER_SHARDS: String(LOGICAL_SHARDS) });
  await ensureMeterWorkflows(new Client({ connection: temporal, namespace: stack.temporalNamespace }), {
    shards: [input.shard],
    taskQueue: input.taskQueue,
    settings: { idleDelayMs: 200, iterationsPerRun: 20, activityTimeoutMs: 30_000, heartbeatTimeoutMs: 5_000 },
  });
  return {
    api,
    async stop() {
      killWorkerProcesses();
      await api.stop();
      await temporal.close();
    },
  };
}
