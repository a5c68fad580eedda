/**
 * The ledger: per tenant and period, an append-only entry per usage event
 * (keyed by event id) and a balance that moves in the same DynamoDB
 * transaction. A retried post of the same entry is a success that changes
 * nothing; a post of different data under an existing event id is a
 * non-retryable LEDGER_CONFLICT. Corrections are new entries.
 *
 * Item layout and late credits: ledger-items.ts.
 */
import {
  GetItemCommand,
  TransactWriteItemsCommand,
  TransactionCanceledException,
  type CancellationReason,
  type DynamoDBClient,
  type TransactWriteItem,
} from '@aws-sdk/client-dynamodb';
import { ConflictError, DependencyError, InvariantError, ValidationError, type TenantId } from '../shared/index.js';
import { ledgerTableName } from './dynamo.js';
import {
  ISO_UTC,
  MAX_TRANSACT_ITEMS,
  entryItem,
  entryKey,
  isSameEntry,
  partitionKey,
  validateEntry,
  lateCreditItems,
  type AttributeMap,
  type LateCredit,
  type LedgerBalance,
  type LedgerEntry,
  type LedgerStore,
  type PostEntriesOptions,
  type PostEntriesResult,
  type PostEntryResult,
} from './ledger-items.js';
import { planLedgerTransactions, runWithoutSharedBalances, type BalanceChunk } from './model/ledger-batch.js';
import { packWithRollups, rollupWrites } from './model/rollups.js';

export interface DynamoLedgerStoreOptions {
  tablePrefix: string;
  /** Operations per TransactWriteItems (entries plus one balance update per tenant and period). @default 100 */
  maxTransactItems?: number;
  /**
   * Transactions of one batch sent at once. Two transactions that move the same
   * balance never run together (they would conflict on DynamoDB). @default 1
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
    this.transactionsInFlight = options.transactionsInFlight ?? 1;
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
    const result: PostEntriesResult = { posted: 0, duplicates: 0, conflicts: [], late: 0, creditedTo: new Map() };
    const unique = new Map<string, LedgerEntry>();
    // identical copies of an entry in the same batch share its fate: duplicates if it posts, conflicts if it conflicts
    const copies = new Map<LedgerEntry, LedgerEntry[]>();
    for (const entry of entries) {
      validateEntry(entry);
      const key = entryKey(entry);
      const seen = unique.get(key);
      if (seen === undefined) unique.set(key, entry);
      else if (seen.kind === entry.kind && seen.amount === entry.amount && seen.operation === entry.operation) {
        copies.set(seen, [...(copies.get(seen) ?? []), entry]);
      } else result.conflicts.push({ entry, reason: `event id ${entry.eventId} appears twice in the batch with different data` });
    }
    // each transaction also ADDs its entries' hourly rollups (model/rollups.ts), counted in its size
    const transactions = packWithRollups(
      planLedgerTransactions([...unique.values()], this.maxTransactItems),
      this.maxTransactItems,
      Date.now(),
    );
    const late: LateCredit[] = [];
    await runWithoutSharedBalances(transactions, this.transactionsInFlight, async (transaction) => {
      const outcome = await this.postTransaction(transaction, options, late);
      result.posted += outcome.posted;
      result.duplicates += outcome.duplicates;
      result.conflicts.push(...outcome.conflicts);
      for (const [key, period] of outcome.creditedTo) result.creditedTo.set(key, period);
    });
    // late credits (rare: events of finalized periods) go one by one, after the batch's own periods
    for (const credit of late) {
      const outcome = await this.postLate(credit, options);
      result.posted += outcome.posted;
      result.late += outcome.posted;
      result.duplicates += outcome.duplicates;
      result.conflicts.push(...outcome.conflicts);
      for (const [key, period] of outcome.creditedTo) result.creditedTo.set(key, period);
    }
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
   * and the rest is tried again. The entries of a group whose balance is
   * finalized are handed back as late credits (`postLate`). Each round removes
   * at least one entry, so it ends.
   */
  private async postTransaction(
    chunks: BalanceChunk<LedgerEntry>[],
    options: PostEntriesOptions,
    late: LateCredit[],
  ): Promise<PostEntriesResult> {
    const result: PostEntriesResult = { posted: 0, duplicates: 0, conflicts: [], late: 0, creditedTo: new Map() };
    let live = chunks.map((chunk) => ({ ...chunk, entries: [...chunk.entries] }));
    for (let round = 0; ; round += 1) {
      if (round > 1_000) throw new InvariantError('ledger transaction did not settle after 1000 rounds');
      // entries found or moved are dropped; each balance still appears once (late entries leave the batch)
      live = live
        .filter((chunk) => chunk.entries.length > 0)
        .map((chunk) => ({ ...chunk, amount: chunk.entries.reduce((sum, entry) => sum + entry.amount, 0) }));
      if (live.length === 0) return result;
      const { items, itemEntries } = this.transactionItems(live);
      let reasons: CancellationReason[];
      try {
        await this.client.send(new TransactWriteItemsCommand({ TransactItems: items }));
        options.onTransaction?.();
        for (const chunk of live) {
          for (const entry of chunk.entries) {
            result.posted += 1;
            if (entry.lateOf !== undefined) result.late += 1;
            result.creditedTo.set(entryKey(entry), entry.periodStart);
          }
        }
        return result;
      } catch (error) {
        if (!(error instanceof TransactionCanceledException)) {
          throw new DependencyError('DYNAMODB_UNAVAILABLE', 'DynamoDB did not post the ledger batch', { cause: error });
        }
        reasons = error.CancellationReasons ?? [];
      }
      options.onTransaction?.();
      const { taken, moved } = await this.classifyCancellation({ reasons, itemEntries, result });
      if (taken.size === 0 && moved.size === 0) {
        // Cancelled for another reason (a concurrent transaction on the same balance, throttling): retry later.
        throw new DependencyError('DYNAMODB_UNAVAILABLE', 'DynamoDB cancelled the ledger transaction', {
          details: { reasons: reasons.map((reason) => reason.Code ?? 'None') },
        });
      }
      live = live.map((chunk) => {
        const entries = chunk.entries.filter((entry) => !taken.has(entry));
        const next = moved.get(chunk);
        if (next === undefined) return { ...chunk, entries };
        for (const entry of entries) late.push({ entry, originalPeriodStart: entry.periodStart, nextPeriodStart: next });
        return { ...chunk, entries: [] };
      });
    }
  }

  /**
   * The transaction of the live chunks: each entry's conditional put, then its group's balance update;
   * last, the hourly rollups of every live entry (unconditional ADDs: they move exactly when the entries land).
   */
  private transactionItems(live: BalanceChunk<LedgerEntry>[]): {
    items: TransactWriteItem[];
    itemEntries: (LedgerEntry | BalanceChunk<LedgerEntry>)[];
  } {
    const postedAtMs = Date.now();
    const items: TransactWriteItem[] = [];
    const itemEntries: (LedgerEntry | BalanceChunk<LedgerEntry>)[] = [];
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
          // a finalized period takes no new entry (late events go to the next open period)
          ConditionExpression: 'attribute_not_exists(finalizedAtMs)',
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          ExpressionAttributeValues: { ':amount': { N: String(chunk.amount) }, ':count': { N: String(chunk.entries.length) } },
        },
      });
      itemEntries.push(chunk);
    }
    items.push(
      ...rollupWrites(
        this.table,
        live.flatMap((chunk) => chunk.entries),
        postedAtMs,
      ),
    );
    return { items, itemEntries };
  }

  /**
   * Reads why a transaction was cancelled: entries already there are taken out
   * (counted in `result` as duplicates or conflicts), and groups whose balance
   * is finalized are moved to the period their balance names.
   */
  private async classifyCancellation(input: {
    reasons: CancellationReason[];
    itemEntries: (LedgerEntry | BalanceChunk<LedgerEntry>)[];
    result: PostEntriesResult;
  }): Promise<{ taken: Set<LedgerEntry>; moved: Map<BalanceChunk<LedgerEntry>, string> }> {
    const { reasons, itemEntries, result } = input;
    const taken = new Set<LedgerEntry>();
    const moved = new Map<BalanceChunk<LedgerEntry>, string>();
    for (const [index, reason] of reasons.entries()) {
      const item = itemEntries[index];
      if (item === undefined || reason.Code !== 'ConditionalCheckFailed') continue;
      if ('entries' in item) {
        const next = reason.Item?.['nextPeriodStart']?.S ?? (await this.readBalanceItem(item))?.['nextPeriodStart']?.S;
        if (next === undefined || !ISO_UTC.test(next) || next <= item.periodStart) {
          throw new InvariantError(`finalized period ${item.periodStart} of ${item.tenant} names no later period`);
        }
        moved.set(item, next);
        continue;
      }
      taken.add(item);
      const existing = reason.Item ?? (await this.readEntry(item));
      if (isSameEntry(existing, item)) {
        result.duplicates += 1;
        result.creditedTo.set(entryKey(item), item.periodStart);
      } else result.conflicts.push({ entry: item, reason: `ledger entry ${item.eventId} already exists with different data` });
    }
    return { taken, moved };
  }

  /**
   * Credits one entry of a finalized period to the next open period (the
   * layout in the file header): the entry and its balance move in the later
   * period, the `late#` marker and `lateCredited` in the original one, all in
   * one transaction. A later period that is itself finalized passes it on.
   */
  private async postLate(credit: LateCredit, options: PostEntriesOptions): Promise<PostEntriesResult> {
    const result: PostEntriesResult = { posted: 0, duplicates: 0, conflicts: [], late: 0, creditedTo: new Map() };
    const { entry: input, originalPeriodStart } = credit;
    const original = partitionKey(input.tenant, originalPeriodStart);
    let target = credit.nextPeriodStart;
    for (let hop = 0; ; hop += 1) {
      if (hop > 1_000) throw new InvariantError(`late entry ${input.eventId} found no open period after 1000 hops`);
      if (!ISO_UTC.test(target) || target <= originalPeriodStart) {
        throw new InvariantError(`finalized period ${originalPeriodStart} of ${input.tenant} names no later period`);
      }
      const entry: LedgerEntry = { ...input, periodStart: target, lateOf: originalPeriodStart };
      const items = lateCreditItems({ table: this.table, entry, originalPartition: original, target });
      let reasons: CancellationReason[];
      try {
        await this.client.send(new TransactWriteItemsCommand({ TransactItems: items }));
        options.onTransaction?.();
        result.posted = 1;
        result.creditedTo.set(entryKey(input), target);
        return result;
      } catch (error) {
        if (!(error instanceof TransactionCanceledException)) {
          throw new DependencyError('DYNAMODB_UNAVAILABLE', 'DynamoDB did not post the late ledger entry', { cause: error });
        }
        reasons = error.CancellationReasons ?? [];
      }
      options.onTransaction?.();
      const [entryReason, balanceReason, markerReason] = reasons;
      if (entryReason?.Code === 'ConditionalCheckFailed' || markerReason?.Code === 'ConditionalCheckFailed') {
        // credited before (a retry): the same data is a duplicate, different data a conflict
        const existing = entryReason?.Item ?? (await this.readEntry(entry));
        if (isSameEntry(existing, entry)) {
          result.duplicates = 1;
          result.creditedTo.set(entryKey(input), target);
        } else result.conflicts.push({ entry: input, reason: `ledger entry ${entry.eventId} already exists with different data` });
        return result;
      }
      if (balanceReason?.Code === 'ConditionalCheckFailed') {
        const next =
          balanceReason.Item?.['nextPeriodStart']?.S ??
          (await this.readBalanceItem({ tenant: entry.tenant, periodStart: target }))?.['nextPeriodStart']?.S;
        if (next === undefined || next <= target)
          throw new InvariantError(`finalized period ${target} of ${entry.tenant} names no later period`);
        target = next;
        continue;
      }
      throw new DependencyError('DYNAMODB_UNAVAILABLE', 'DynamoDB cancelled the late ledger transaction', {
        details: { reasons: reasons.map((reason) => reason.Code ?? 'None') },
      });
    }
  }

  private async readBalanceItem(chunk: { tenant: string; periodStart: string }): Promise<AttributeMap | undefined> {
    const reply = await this.read(
      new GetItemCommand({
        TableName: this.table,
        Key: { pk: { S: partitionKey(chunk.tenant as TenantId, chunk.periodStart) }, sk: { S: 'balance' } },
        ConsistentRead: true,
      }),
    );
    return reply.Item;
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

  /**
   * Posts one entry (in its period, or the next open one when its period is finalized).
   * @throws ValidationError for a malformed entry (nothing written)
   * @throws ConflictError `LEDGER_CONFLICT` when the event id holds different data
   * @throws DependencyError `DYNAMODB_UNAVAILABLE` when DynamoDB fails (retry is safe)
   */
  async postEntry(entry: LedgerEntry): Promise<PostEntryResult> {
    const result = await this.postEntries([entry]);
    const conflict = result.conflicts[0];
    if (conflict !== undefined) {
      throw new ConflictError('LEDGER_CONFLICT', conflict.reason, {
        details: { tenant: entry.tenant, periodStart: entry.periodStart, eventId: entry.eventId },
      });
    }
    const credited = result.creditedTo.get(entryKey(entry));
    if (credited === undefined) throw new InvariantError(`ledger entry ${entry.eventId} was neither posted nor found`);
    return { isDuplicate: result.duplicates > 0, creditedPeriodStart: credited };
  }

  /** A consistent read; any failure (throttling, 500, network) is a retryable DYNAMODB_UNAVAILABLE. */
  private async read(command: GetItemCommand): Promise<{ Item?: AttributeMap | undefined }> {
    try {
      return await this.client.send(command);
    } catch (error) {
      throw new DependencyError('DYNAMODB_UNAVAILABLE', 'DynamoDB did not answer a ledger read', { cause: error });
    }
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
