/**
 * postLedgerEntries: posts a batch of ledger entries (corrections, credits,
 * replayed usage) durably. Each entry is one idempotent activity, so a crash
 * anywhere re-runs only what Temporal has not recorded as done, and a re-run
 * entry is recognised as a duplicate.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { LedgerActivities, PostLedgerEntryInput } from '../activities/index.js';

const { postLedgerEntry } = proxyActivities<LedgerActivities>({
  startToCloseTimeout: '30 seconds',
  retry: {
    initialInterval: '200 milliseconds',
    backoffCoefficient: 2,
    maximumInterval: '10 seconds',
    nonRetryableErrorTypes: ['INVALID_ID', 'INVALID_INPUT', 'LEDGER_CONFLICT', 'INVARIANT_VIOLATED'],
  },
});

export interface PostLedgerEntriesInput {
  entries: PostLedgerEntryInput[];
}

export interface PostLedgerEntriesResult {
  posted: number;
  duplicates: number;
}

/** Posts every entry in order; returns how many were new and how many were already there. */
export async function postLedgerEntries(input: PostLedgerEntriesInput): Promise<PostLedgerEntriesResult> {
  let posted = 0;
  let duplicates = 0;
  for (const entry of input.entries) {
    const result = await postLedgerEntry(entry);
    if (result.isDuplicate) duplicates += 1;
    else posted += 1;
  }
  return { posted, duplicates };
}
