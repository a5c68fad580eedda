/**
 * Deferred jobs recorded straight in a job store, as a submit leaves them (for
 * the wake and sweep tests): aged, with or without a kept submission, and with
 * a workflow on a task queue nobody polls when asked.
 */
import type { Client } from '@temporalio/client';
import { deferredJobId } from '../../src/jobs/index.js';
import { parseEventId, type TenantId } from '../../src/shared/index.js';
import { jobWorkflowId } from '../../src/workflows/index.js';
import { type DynamoJobStore } from '../../src/jobs/index.js';

export const TEST_SUBMISSION = {
  planId: 'starter',
  query: 'mutation Export($n: Int) { exportReport(rows: $n) { id } }',
  variables: { n: 7 },
};

export interface RecordTestJobInput {
  store: DynamoJobStore;
  client: Client;
  /** Where its workflow is started when `hasWorkflow` (a queue nobody polls). */
  taskQueue: string;
  tenant: TenantId;
  /** Its request id. */
  name: string;
  /** How long ago it was created, ms. */
  ageMs: number;
  /** @default one hour */
  ttlMs?: number;
  /** @default false */
  hasWorkflow?: boolean;
  /** @default true */
  hasSubmission?: boolean;
}

/** Records a queued job of cost 3 created `ageMs` ago; @returns its id */
export async function recordTestJob(input: RecordTestJobInput): Promise<string> {
  const { tenant } = input;
  const jobId = deferredJobId(tenant, parseEventId(input.name));
  const createdAtMs = Date.now() - input.ageMs;
  await input.store.create({
    jobId,
    tenant,
    keyId: 'k1',
    requestId: input.name,
    operationName: 'Export',
    cost: 3,
    createdAtMs,
    expiresAtMs: createdAtMs + (input.ttlMs ?? 3_600_000),
    maxOpenJobs: 1_000,
    ...(input.hasSubmission === false ? {} : { submission: TEST_SUBMISSION }),
  });
  if (input.hasWorkflow === true) {
    await input.client.workflow.start('runDeferredJob', {
      taskQueue: input.taskQueue,
      workflowId: jobWorkflowId({ tenant, jobId }),
      args: [{}],
    });
  }
  return jobId;
}

/** The status of the job's workflow (`RUNNING`, ...), or `NONE` when it has none. */
export async function jobWorkflowState(client: Client, input: { tenant: string; jobId: string }): Promise<string> {
  try {
    return (await client.workflow.getHandle(jobWorkflowId(input)).describe()).status.name;
  } catch {
    return 'NONE';
  }
}
