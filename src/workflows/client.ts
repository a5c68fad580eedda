/**
 * Starting tollgate workflows. Every start names an explicit id-conflict and
 * id-reuse policy, so a retried start is a no-op rather than a second run.
 */
import { WorkflowIdConflictPolicy, WorkflowIdReusePolicy, type Client } from '@temporalio/client';
import { ledgerPostWorkflowId } from './ids.js';
import type { PostLedgerEntriesInput, PostLedgerEntriesResult, postLedgerEntries } from './workflows/index.js';

export interface PostLedgerBatchInput extends PostLedgerEntriesInput {
  tenant: string;
  /** Business key of the batch (e.g. a correction id); the same key posts once. */
  batchId: string;
  taskQueue: string;
}

/**
 * Starts (or joins, if already running) the posting of a batch and waits for
 * its result. A completed batch with the same id is not run again: its id
 * cannot be reused, so the start fails with WorkflowExecutionAlreadyStartedError.
 */
export async function postLedgerBatch(client: Client, input: PostLedgerBatchInput): Promise<PostLedgerEntriesResult> {
  const handle = await client.workflow.start<typeof postLedgerEntries>('postLedgerEntries', {
    taskQueue: input.taskQueue,
    workflowId: ledgerPostWorkflowId({ tenant: input.tenant, batchId: input.batchId }),
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
    args: [{ entries: input.entries }],
  });
  return handle.result();
}
