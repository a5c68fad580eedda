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
 */
import {
  ConditionalCheckFailedException,
  GetItemCommand,
  TransactWriteItemsCommand,
  TransactionCanceledException,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import {
  ConflictError,
  DependencyError,
  ValidationError,
  type EventId,
  type TenantId,
} from '../shared/index.js';
import { ledgerTableName } from './dynamo.js';

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

/** Port: where ledger entries live. */
export interface LedgerStore {
  postEntry(entry: LedgerEntry): Promise<PostEntryResult>;
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

/** LedgerStore on DynamoDB (`TransactWriteItems`: entry put + balance update). */
export class DynamoLedgerStore implements LedgerStore {
  private readonly table: string;

  constructor(
    private readonly client: DynamoDBClient,
    options: { tablePrefix: string },
  ) {
    this.table = ledgerTableName(options.tablePrefix);
  }

  /**
   * @throws ValidationError for a malformed entry (nothing written)
   * @throws ConflictError `LEDGER_CONFLICT` when the event id holds different data
   * @throws DependencyError `DYNAMODB_UNAVAILABLE` when DynamoDB fails (retry is safe)
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
    const existing = await this.client.send(
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
    const reply = await this.client.send(
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
