/**
 * The ledger: per tenant and period, an append-only entry per usage event
 * (keyed by event id) and a balance that moves in the same DynamoDB
 * transaction. A retried post of the same entry is a success that changes
 * nothing; a post of different data under an existing event id is a
 * non-retryable LEDGER_CONFLICT. Corrections are new entries.
 *
 * Item layout (table `<prefix>ledger`):
 *   pk `tenant#<tenant>#period#<periodStartIso>`
 *   sk `entry#<eventId>`  eventId, kind, amount (integer units), operation, postedAtMs
 *   sk `balance`          amount (sum of entries), entries (count)
 *
 * Late credits (an event of an already finalized period P, credited to a later
 * period Q), as the audit (`audit.ts`) counts them toward P. One transaction:
 *   Q's partition: sk `entry#<eventId>` with `lateOf` = P's ISO start; Q's balance
 *                  ADDs amount, entries and `lateAmount` (late credits Q holds for earlier periods)
 *   P's partition: sk `late#<eventId>` (amount, `heldIn` = Q's ISO start); P's balance
 *                  ADDs `lateCredited` (P's events credited elsewhere)
 * so the amount that belongs to a period is `amount − lateAmount + lateCredited`,
 * read from one balance item, and an in-flight event is found in the ledger under
 * `entry#<id>` or `late#<id>` of its own period's partition.
 */
import {
  ConditionalCheckFailedException,
  GetItemCommand,
  TransactWriteItemsCommand,
  TransactionCanceledException,
  type AttributeValue,
  type CancellationReason,
  type DynamoDBClient,
  type TransactWriteItem,
} from '@aws-sdk/client-dynamodb';
import {
  ConflictError,
  DependencyError,
  ValidationError,
  type EventId,
  type TenantId,
} from '../shared/index.js';
import { ledgerTableName } from './dynamo.js';
import { planLedgerTransactions, runWithoutSharedBalances, type BalanceChunk } from './model/ledger-batch.js';

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
}

/** Outcome of posting one entry. */
export interface PostEntryResult {
  /** True when an identical entry was already there (a retry): nothing moved. */
  isDuplicate: boolean;
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

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const KIND = /^[a-z][a-z0-9.-]{0,63}$/;

function validate(entry: LedgerEntry): void {
  if (!ISO_UTC.test(entry.periodStart) || Number.isNaN(Date.parse(entry.periodStart))) {
    throw new ValidationError('INVALID_INPUT', `periodStart must be ISO-8601 UTC with ms, got ${JSON.stringify(entry.periodStart)}`);
  }
  if (!Number.isSafeInteger(entry.amount)) {
    throw new ValidationError('INVALID_INPUT', `amount must be a safe integer, got ${entry.amount}`);
  }
  if (!KIND.test(entry.kind)) throw new ValidationError('INVALID_INPUT', `invalid entry kind ${JSON.stringify(entry.kind)}`);
  if (entry.operation.length > 256) throw new ValidationError('INVALID_INPUT', 'operation is longer than 256 chars');
}

const partitionKey = (tenant: TenantId, periodStart: string): string => `tenant#${tenant}#period#${periodStart}`;

type AttributeMap = Record<string, AttributeValue>;

function entryItem(entry: LedgerEntry, postedAtMs: number): AttributeMap {
  return {
    pk: { S: partitionKey(entry.tenant, entry.periodStart) },
    sk: { S: `entry#${entry.eventId}` },
    eventId: { S: entry.eventId },
    kind: { S: entry.kind },
    amount: { N: String(entry.amount) },
    operation: { S: entry.operation },
    postedAtMs: { N: String(postedAtMs) },
    ...(entry.source === undefined ? {} : { source: { S: entry.source } }),
  };
}

/** Same event data (kind, amount, operation); when it was posted and from where do not count. */
function isSameEntry(item: AttributeMap | undefined, entry: LedgerEntry): boolean {
  return (
    item !== undefined &&
    item['kind']?.S === entry.kind &&
    item['amount']?.N === String(entry.amount) &&
    item['operation']?.S === entry.operation
  );
}

export interface DynamoLedgerStoreOptions {
  tablePrefix: string;
  /** Operations per TransactWriteItems (entries plus one balance update per tenant and period). @default 100 */
  maxTransactItems?: number;
  /**
   * Transactions of one batch sent at once. Two transactions that move the same
   * balance never run together (they would conflict on DynamoDB). @default 4
   */
  transactionsInFlight?: number;
}

/** LedgerStore on DynamoDB (`TransactWriteItems`: entry put + balance update). */
export class DynamoLedgerStore implements LedgerStore {
  private readonly table: string;
  private readonly maxTransactItems: number;
  private readonly transactionsInFlight: number;

  constructor(
    private readonly client: DynamoDBClient,
    options: DynamoLedgerStoreOptions,
  ) {
    this.table = ledgerTableName(options.tablePrefix);
    this.maxTransactItems = options.maxTransactItems ?? MAX_TRANSACT_ITEMS;
    if (!Number.isInteger(this.maxTransactItems) || this.maxTransactItems < 2 || this.maxTransactItems > MAX_TRANSACT_ITEMS) {
      throw new ValidationError('INVALID_INPUT', `maxTransactItems must be an integer in 2..${MAX_TRANSACT_ITEMS}`);
    }
    this.transactionsInFlight = options.transactionsInFlight ?? 4;
    if (!Number.isInteger(this.transactionsInFlight) || this.transactionsInFlight < 1 || this.transactionsInFlight > 64) {
      throw new ValidationError('INVALID_INPUT', 'transactionsInFlight must be an integer in 1..64');
    }
  }

  /**
   * Posts a batch: entries grouped per tenant and period, each group's balance
   * moved by the group's sum in the same transaction as its entries. Replaying
   * a batch (wholly or partly posted before) moves nothing twice: an entry
   * already there is compared, and dropped from the transaction as a duplicate
   * (identical) or reported as a conflict (different data; never written).
   * Entries with the same event id inside one batch count once when identical.
   * @throws ValidationError for a malformed entry (nothing written)
   * @throws DependencyError `DYNAMODB_UNAVAILABLE` when DynamoDB fails; transactions
   *   already committed stay, and a retry of the whole batch is safe.
   */
  async postEntries(entries: readonly LedgerEntry[], options: PostEntriesOptions = {}): Promise<PostEntriesResult> {
    const result: PostEntriesResult = { posted: 0, duplicates: 0, conflicts: [] };
    const unique = new Map<string, LedgerEntry>();
    // identical copies of an entry in the same batch share its fate: duplicates if it posts, conflicts if it conflicts
    const copies = new Map<LedgerEntry, LedgerEntry[]>();
    for (const entry of entries) {
      validate(entry);
      const key = `${partitionKey(entry.tenant, entry.periodStart)}/${entry.eventId}`;
      const seen = unique.get(key);
      if (seen === undefined) unique.set(key, entry);
      else if (seen.kind === entry.kind && seen.amount === entry.amount && seen.operation === entry.operation) {
        copies.set(seen, [...(copies.get(seen) ?? []), entry]);
      } else result.conflicts.push({ entry, reason: `event id ${entry.eventId} appears twice in the batch with different data` });
    }
    const transactions = planLedgerTransactions([...unique.values()], this.maxTransactItems);
    await runWithoutSharedBalances(transactions, this.transactionsInFlight, async (transaction) => {
      const outcome = await this.postTransaction(transaction, options);
      result.posted += outcome.posted;
      result.duplicates += outcome.duplicates;
      result.conflicts.push(...outcome.conflicts);
    });
    const conflicted = new Map(result.conflicts.map((conflict) => [conflict.entry, conflict.reason]));
    for (const [first, sameCopies] of copies) {
      const reason = conflicted.get(first);
      if (reason === undefined) result.duplicates += sameCopies.length;
      else result.conflicts.push(...sameCopies.map((entry) => ({ entry, reason })));
    }
    return result;
  }

  /**
   * One transaction; when some entries already exist it is cancelled as a
   * whole, those entries are classified (duplicate or conflict) and removed,
   * and the rest is tried again. Each round removes at least one entry.
   */
  private async postTransaction(chunks: BalanceChunk<LedgerEntry>[], options: PostEntriesOptions): Promise<PostEntriesResult> {
    const result: PostEntriesResult = { posted: 0, duplicates: 0, conflicts: [] };
    let live = chunks.map((chunk) => ({ ...chunk, entries: [...chunk.entries] }));
    for (;;) {
      live = live
        .filter((chunk) => chunk.entries.length > 0)
        .map((chunk) => ({ ...chunk, amount: chunk.entries.reduce((sum, entry) => sum + entry.amount, 0) }));
      if (live.length === 0) return result;
      const postedAtMs = Date.now();
      const items: TransactWriteItem[] = [];
      const itemEntries: (LedgerEntry | undefined)[] = [];
      for (const chunk of live) {
        for (const entry of chunk.entries) {
          items.push({
            Put: {
              TableName: this.table,
              Item: entryItem(entry, postedAtMs),
              ConditionExpression: 'attribute_not_exists(pk)',
              ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
            },
          });
          itemEntries.push(entry);
        }
        items.push({
          Update: {
            TableName: this.table,
            Key: { pk: { S: partitionKey(chunk.tenant as TenantId, chunk.periodStart) }, sk: { S: 'balance' } },
            UpdateExpression: 'ADD amount :amount, entries :count',
            ExpressionAttributeValues: { ':amount': { N: String(chunk.amount) }, ':count': { N: String(chunk.entries.length) } },
          },
        });
        itemEntries.push(undefined);
      }
      let reasons: CancellationReason[];
      try {
        await this.client.send(new TransactWriteItemsCommand({ TransactItems: items }));
        options.onTransaction?.();
        result.posted += itemEntries.filter((entry) => entry !== undefined).length;
        return result;
      } catch (error) {
        if (!(error instanceof TransactionCanceledException)) {
          throw new DependencyError('DYNAMODB_UNAVAILABLE', 'DynamoDB did not post the ledger batch', { cause: error });
        }
        reasons = error.CancellationReasons ?? [];
      }
      options.onTransaction?.();
      const taken = new Set<LedgerEntry>();
      for (const [index, reason] of reasons.entries()) {
        const entry = itemEntries[index];
        if (entry === undefined || reason.Code !== 'ConditionalCheckFailed') continue;
        taken.add(entry);
        const existing = reason.Item ?? (await this.readEntry(entry));
        if (isSameEntry(existing, entry)) result.duplicates += 1;
        else result.conflicts.push({ entry, reason: `ledger entry ${entry.eventId} already exists with different data` });
      }
      if (taken.size === 0) {
        // Cancelled for another reason (a concurrent transaction on the same balance, throttling): retry later.
        throw new DependencyError('DYNAMODB_UNAVAILABLE', 'DynamoDB cancelled the ledger transaction', {
          details: { reasons: reasons.map((reason) => reason.Code ?? 'None') },
        });
      }
      live = live.map((chunk) => ({ ...chunk, entries: chunk.entries.filter((entry) => !taken.has(entry)) }));
    }
  }

  private async readEntry(entry: LedgerEntry): Promise<AttributeMap | undefined> {
    const reply = await this.read(
      new GetItemCommand({
        TableName: this.table,
        Key: { pk: { S: partitionKey(entry.tenant, entry.periodStart) }, sk: { S: `entry#${entry.eventId}` } },
        ConsistentRead: true,
      }),
    );
    return reply.Item;
  }

  /** A consistent read; any failure (throttling, 500, network) is a retryable DYNAMODB_UNAVAILABLE. */
  private async read(command: GetItemCommand): Promise<{ Item?: AttributeMap | undefined }> {
    try {
      return await this.client.send(command);
    } catch (error) {
      throw new DependencyError('DYNAMODB_UNAVAILABLE', 'DynamoDB did not answer a ledger read', { cause: error });
    }
  }

  /**
   * @throws ValidationError for a malformed entry (nothing written)
   * @throws ConflictError `LEDGER_CONFLICT` when the event id holds different data
   * @throws DependencyError `DYNAMODB_UNAVAILABLE` when DynamoDB fails, throttles or cancels the
   *   transaction for a conflict (retry is safe: a committed write is recognised as a duplicate)
   */
  async postEntry(entry: LedgerEntry): Promise<PostEntryResult> {
    validate(entry);
    const pk = partitionKey(entry.tenant, entry.periodStart);
    try {
      await this.client.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            {
              Put: {
                TableName: this.table,
                Item: {
                  pk: { S: pk },
                  sk: { S: `entry#${entry.eventId}` },
                  eventId: { S: entry.eventId },
                  kind: { S: entry.kind },
                  amount: { N: String(entry.amount) },
                  operation: { S: entry.operation },
                  postedAtMs: { N: String(Date.now()) },
                },
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            },
            {
              Update: {
                TableName: this.table,
                Key: { pk: { S: pk }, sk: { S: 'balance' } },
                UpdateExpression: 'ADD amount :amount, entries :one',
                ExpressionAttributeValues: { ':amount': { N: String(entry.amount) }, ':one': { N: '1' } },
              },
            },
          ],
        }),
      );
      return { isDuplicate: false };
    } catch (error) {
      const isEntryTaken =
        error instanceof TransactionCanceledException &&
        error.CancellationReasons?.[0]?.Code === 'ConditionalCheckFailed';
      if (!isEntryTaken && !(error instanceof ConditionalCheckFailedException)) {
        throw new DependencyError('DYNAMODB_UNAVAILABLE', 'DynamoDB did not post the ledger entry', { cause: error });
      }
    }
    return this.compareExisting(pk, entry);
  }

  private async compareExisting(pk: string, entry: LedgerEntry): Promise<PostEntryResult> {
    const existing = await this.read(
      new GetItemCommand({ TableName: this.table, Key: { pk: { S: pk }, sk: { S: `entry#${entry.eventId}` } }, ConsistentRead: true }),
    );
    const item = existing.Item;
    const isIdentical =
      item !== undefined &&
      item['kind']?.S === entry.kind &&
      item['amount']?.N === String(entry.amount) &&
      item['operation']?.S === entry.operation;
    if (!isIdentical) {
      throw new ConflictError('LEDGER_CONFLICT', `ledger entry ${entry.eventId} already exists with different data`, {
        details: { tenant: entry.tenant, periodStart: entry.periodStart, eventId: entry.eventId },
      });
    }
    return { isDuplicate: true };
  }

  async getBalance(input: { tenant: TenantId; periodStart: string }): Promise<LedgerBalance> {
    const reply = await this.read(
      new GetItemCommand({
        TableName: this.table,
        Key: { pk: { S: partitionKey(input.tenant, input.periodStart) }, sk: { S: 'balance' } },
        ConsistentRead: true,
      }),
    );
    return {
      amount: Number(reply.Item?.['amount']?.N ?? '0'),
      entries: Number(reply.Item?.['entries']?.N ?? '0'),
    };
  }
}
