/**
 * Ledger activities. Idempotent under the event id: a retry after a crash
 * between the DynamoDB write and the activity's completion posts nothing twice.
 */
import { parseEventId, parseTenantId } from '../../shared/index.js';
import type { LedgerStore } from '../../metering/index.js';
import { asActivity } from './errors.js';

/** JSON-safe input of one ledger entry (ids are re-validated on arrival). */
export interface PostLedgerEntryInput {
  tenant: string;
  periodStart: string;
  eventId: string;
  kind: string;
  amount: number;
  operation: string;
}

export interface PostLedgerEntryResult {
  isDuplicate: boolean;
}

export interface LedgerActivityDeps {
  ledger: LedgerStore;
}

/** Activities that write the ledger. */
export function createLedgerActivities(deps: LedgerActivityDeps) {
  return {
    /** Posts one entry; a duplicate of an identical entry is a success. */
    async postLedgerEntry(input: PostLedgerEntryInput): Promise<PostLedgerEntryResult> {
      return asActivity(() =>
        deps.ledger.postEntry({
          tenant: parseTenantId(input.tenant),
          periodStart: input.periodStart,
          eventId: parseEventId(input.eventId),
          kind: input.kind,
          amount: input.amount,
          operation: input.operation,
        }),
      );
    },
  };
}

export type LedgerActivities = ReturnType<typeof createLedgerActivities>;
