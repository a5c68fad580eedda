/**
 * Workflow ids, built only from business keys (STYLE §7): a retried start of
 * the same business act finds the same workflow. Random ids are banned.
 */
import { parseEventId, parseTenantId } from '../shared/index.js';

/** `ledger-post/<tenant>/<batchId>`: one posting of a batch of ledger entries. */
export function ledgerPostWorkflowId(input: { tenant: string; batchId: string }): string {
  return `ledger-post/${parseTenantId(input.tenant)}/${parseEventId(input.batchId)}`;
}
