/**
 * The ledger's entries and results, the `LedgerStore` port, and the codec of
 * its DynamoDB items. Pure: no I/O (the store is ledger.ts).
 *
 * Item layout (table `<prefix>ledger`), one partition per tenant and period:
 *   pk `tenant#<tenant>#period#<periodStartIso>`
 *   sk `entry#<eventId>`   eventId, kind, amount (integer units), operation, postedAtMs, atMs? (event time), keyId?, source?,
 *                          reason? + author? (`correction.v1` entries), lateOf? (ISO start of the period the event belongs to, when it was
 *                          credited here because that period was already finalized)
 *   (hourly rollups, in partitions of their own `tenant#<tenant>#rollup#<YYYY-MM>`: model/rollups.ts)
 *   sk `balance`           amount (sum of the partition's entries), entries (count),
 *                          finalizedAtMs? + nextPeriodStart? (set once by the account workflow at
 *                          the end of the grace window; see below)
 *   sk `statement`         the period's statement (src/billing/periods.ts)
 *   sk `warning#<limitId>#<percent>`  a threshold warning's delivery record (src/billing/periods.ts)
 *
 * Late events. A period closes at its end; events for it are still accepted
 * into it during a grace window; then it is finalized (`finalizedAtMs` on its
 * balance). Every balance update of a new entry is conditional on
 * `attribute_not_exists(finalizedAtMs)`, so once finalized a partition takes
 * no new entry: the entry is credited to the period named by the balance's
 * `nextPeriodStart` instead (following further finalized periods), under the
 * same event id. One transaction per late entry (an event of finalized period
 * P credited to a later period Q):
 *   Q's partition: sk `entry#<eventId>` with `lateOf` = P's ISO start; Q's balance
 *                  ADDs amount, entries and `lateAmount` (late credits Q holds for earlier periods)
 *   P's partition: sk `late#<eventId>` (amount, `heldIn` = Q's ISO start); P's balance
 *                  ADDs `lateCredited` (P's events credited elsewhere; allowed after finalization)
 * so the usage that belongs to a period is `amount − lateAmount + lateCredited`,
 * read from one balance item (the audit, `audit.ts`), and an in-flight event is
 * found in the ledger under `entry#<id>` or `late#<id>` of its own period's
 * partition. A retry walks the same path and finds both items: a duplicate,
 * never counted twice. A partition's `amount` is what is billed in that period
 * (its own entries plus late credits of earlier periods).
 */
import type { AttributeValue, TransactWriteItem } from '@aws-sdk/client-dynamodb';
import { ValidationError, type EventId, type TenantId } from '../shared/index.js';
import { rollupWrites } from './model/rollups.js';

/** DynamoDB's limit of operations in one TransactWriteItems. */
export const MAX_TRANSACT_ITEMS = 100;

/** One ledger line: an admitted (positive) or refunded (negative) amount of cost units. */
export interface LedgerEntry {
  tenant: TenantId;
  /** Start of the billing period, ISO-8601 UTC (`2026-11-01T00:00:00.000Z`); periods are [start, end). */
  periodStart: string;
  eventId: EventId;
  /** What the entry records, e.g. `usage.reserved.v1`, `usage.settled.v1`, `correction.v1`. */
  kind: string;
  /** Cost units, a safe integer; negative for refunds and credits. */
  amount: number;
  operation: string;
  /** Where the entry came from, e.g. `{s:3}:usage:v1/1700000000000-0` (informational, not compared). */
  source?: string;
  /** `correction.v1` entries: why, and who made it (informational, not compared). */
  reason?: string;
  author?: string;
  /**
   * Set by the ledger (never by callers) when the entry is credited to a later period because
   * `periodStart`'s own period was finalized: that original period (ISO).
   */
  lateOf?: string;
  /**
   * When the event happened (the decider's Redis time), epoch ms: the hour of its rollup
   * (`model/rollups.ts`) and the time a receipt and a replay show. Absent: the time it was posted.
   */
  atMs?: number;
  /** The API key the request came with (informational, not compared): a what-if replay's apiKey-scoped limits. */
  keyId?: string;
}

/** Outcome of posting one entry. */
export interface PostEntryResult {
  /** True when an identical entry was already there (a retry): nothing moved. */
  isDuplicate: boolean;
  /** The period the entry is (now or already) credited to: its own, or a later one when its own was finalized. */
  creditedPeriodStart: string;
}

/** The balance of one tenant and period. */
export interface LedgerBalance {
  amount: number;
  entries: number;
}

/** An entry that could not be posted because its event id holds different data. */
export interface LedgerConflict {
  entry: LedgerEntry;
  reason: string;
}

/** Outcome of posting a batch of entries. */
export interface PostEntriesResult {
  /** Entries written now (each balance moved by them). */
  posted: number;
  /** Entries already there, identical (a replay): nothing moved. */
  duplicates: number;
  /** Entries whose id holds different data: not written, nothing moved. */
  conflicts: LedgerConflict[];
  /** Of `posted`, entries credited to a later period because theirs was finalized (`lateOf`). */
  late: number;
  /** Where each posted or duplicate entry is credited, by `<tenant>#<periodStart>#<eventId>` of the input entry. */
  creditedTo: Map<string, string>;
}

export interface PostEntriesOptions {
  /** Called after each committed or cancelled transaction (a long batch heartbeats with it). */
  onTransaction?: () => void;
}

/** Port: where ledger entries live. */
export interface LedgerStore {
  postEntry(entry: LedgerEntry): Promise<PostEntryResult>;
  postEntries(entries: readonly LedgerEntry[], options?: PostEntriesOptions): Promise<PostEntriesResult>;
  getBalance(input: { tenant: TenantId; periodStart: string }): Promise<LedgerBalance>;
}

export const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const KIND = /^[a-z][a-z0-9.-]{0,63}$/;
/** Last epoch ms with a four-digit year (9999-12-31T23:59:59.999Z). */
const MAX_DATE_MS = 253_402_300_799_999;

export function validateEntry(entry: LedgerEntry): void {
  if (!ISO_UTC.test(entry.periodStart) || Number.isNaN(Date.parse(entry.periodStart))) {
    throw new ValidationError('INVALID_INPUT', `periodStart must be ISO-8601 UTC with ms, got ${JSON.stringify(entry.periodStart)}`);
  }
  if (!Number.isSafeInteger(entry.amount)) {
    throw new ValidationError('INVALID_INPUT', `amount must be a safe integer, got ${entry.amount}`);
  }
  if (!KIND.test(entry.kind)) throw new ValidationError('INVALID_INPUT', `invalid entry kind ${JSON.stringify(entry.kind)}`);
  if (entry.operation.length > 256) throw new ValidationError('INVALID_INPUT', 'operation is longer than 256 chars');
  if ((entry.reason?.length ?? 0) > 1_000 || (entry.author?.length ?? 0) > 256) {
    throw new ValidationError('INVALID_INPUT', 'reason or author is too long');
  }
  if (entry.lateOf !== undefined) throw new ValidationError('INVALID_INPUT', 'lateOf is set by the ledger, never by a caller');
  if (entry.atMs !== undefined && (!Number.isSafeInteger(entry.atMs) || entry.atMs < 0 || entry.atMs > MAX_DATE_MS)) {
    throw new ValidationError('INVALID_INPUT', `atMs must be epoch ms of a four-digit year, got ${entry.atMs}`);
  }
}

/** Identity of an input entry in a batch result (`creditedTo`). */
export const entryKey = (entry: { tenant: string; periodStart: string; eventId: string }): string =>
  `${entry.tenant}#${entry.periodStart}#${entry.eventId}`;

/** The partition of one tenant and period. */
export const partitionKey = (tenant: TenantId, periodStart: string): string => `tenant#${tenant}#period#${periodStart}`;

export type AttributeMap = Record<string, AttributeValue>;

/** The item of an entry as stored. */
export function entryItem(entry: LedgerEntry, postedAtMs: number): AttributeMap {
  return {
    pk: { S: partitionKey(entry.tenant, entry.periodStart) },
    sk: { S: `entry#${entry.eventId}` },
    eventId: { S: entry.eventId },
    kind: { S: entry.kind },
    amount: { N: String(entry.amount) },
    operation: { S: entry.operation },
    postedAtMs: { N: String(postedAtMs) },
    ...(entry.source === undefined ? {} : { source: { S: entry.source } }),
    ...(entry.reason === undefined ? {} : { reason: { S: entry.reason } }),
    ...(entry.author === undefined ? {} : { author: { S: entry.author } }),
    ...(entry.lateOf === undefined ? {} : { lateOf: { S: entry.lateOf } }),
    ...(entry.atMs === undefined ? {} : { atMs: { N: String(entry.atMs) } }),
    ...(entry.keyId === undefined ? {} : { keyId: { S: entry.keyId } }),
  };
}

/** Same event data (kind, amount, operation); when it was posted and from where do not count. */
export function isSameEntry(item: AttributeMap | undefined, entry: LedgerEntry): boolean {
  return (
    item !== undefined &&
    item['kind']?.S === entry.kind &&
    item['amount']?.N === String(entry.amount) &&
    item['operation']?.S === entry.operation
  );
}

/** An entry of a finalized period, to be credited to a later one. */
export interface LateCredit {
  entry: LedgerEntry;
  originalPeriodStart: string;
  nextPeriodStart: string;
}

/**
 * The one transaction of a late credit (layout in the header): in the later period `target`, the entry
 * (with `lateOf`) and its balance (`lateAmount`), conditional on that period not being finalized; in the
 * original partition, the `late#<eventId>` marker and `lateCredited`.
 */
export function lateCreditItems(input: {
  table: string;
  entry: LedgerEntry;
  originalPartition: string;
  target: string;
}): TransactWriteItem[] {
  const { entry, target } = input;
  const original = input.originalPartition;
  const amount = { N: String(entry.amount) };
  const postedAtMs = Date.now();
  return [
    {
      Put: {
        TableName: input.table,
        Item: entryItem(entry, postedAtMs),
        ConditionExpression: 'attribute_not_exists(pk)',
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      },
    },
    {
      Update: {
        TableName: input.table,
        Key: { pk: { S: partitionKey(entry.tenant, target) }, sk: { S: 'balance' } },
        UpdateExpression: 'ADD amount :amount, entries :one, lateAmount :amount',
        ConditionExpression: 'attribute_not_exists(finalizedAtMs)',
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        ExpressionAttributeValues: { ':amount': amount, ':one': { N: '1' } },
      },
    },
    {
      Put: {
        TableName: input.table,
        Item: { pk: { S: original }, sk: { S: `late#${entry.eventId}` }, eventId: { S: entry.eventId }, amount, heldIn: { S: target } },
        ConditionExpression: 'attribute_not_exists(pk)',
      },
    },
    {
      Update: {
        TableName: input.table,
        Key: { pk: { S: original }, sk: { S: 'balance' } },
        UpdateExpression: 'ADD lateCredited :amount',
        ExpressionAttributeValues: { ':amount': amount },
      },
    },
    // the hour the event happened in counts it once, wherever its entry is credited
    ...rollupWrites(input.table, [entry], postedAtMs),
  ];
}
