/**
 * What the account workflow keeps in a tenant's period partition of the
 * ledger table (layout in src/metering/ledger-items.ts), beside the entries and the balance:
 *
 *   sk `statement`                    version, periodStart, periodEnd, units, entries, lateUnits,
 *                                     lateEntries, byOperation (JSON {op: units}), byKind (JSON),
 *                                     price (JSON PriceBreakdown), currency, totalMicros, isFinal,
 *                                     computedAtMs. Version 1 at the close, 2 (final) after the grace
 *                                     window; a write never lowers or repeats a version.
 *   sk `warning#<limitId>#<percent>`  status pending → delivered | skipped (no webhook) | failed (the
 *                                     workflow gave up: retries exhausted or a non-retryable error;
 *                                     `failure` says why), idempotencyKey, createdAtMs, finishedAtMs.
 *                                     Created with attribute_not_exists and finished only from pending,
 *                                     so a threshold is sent at most once per period, a delivered one is
 *                                     never sent again, and one given up on is not retried by a later run.
 *   balance: finalizedAtMs, nextPeriodStart set once (if_not_exists) by `finalize`: from then on the
 *   ledger credits events of this period to nextPeriodStart (late credits, `lateOf`).
 *
 * Statement totals come from the entries, not the balance, so they also say
 * how much of the period's bill is late credit of earlier periods.
 */
import {
  ConditionalCheckFailedException,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { DependencyError, InvariantError, ValidationError, parseLimitId, type TenantId } from '../shared/index.js';
import { ledgerTableName } from '../metering/index.js';
import { priceUsage, type PriceBreakdown, type PriceSpec } from './model/pricing.js';

type AttributeMap = Record<string, AttributeValue>;

/** Usage of one period partition, summed from its entries. */
export interface PeriodUsage {
  /** Sum of every entry (= the balance): what is billed in this period. */
  units: number;
  entries: number;
  /** Of those, entries of earlier (finalized) periods credited here. */
  lateUnits: number;
  lateEntries: number;
  /** Units per operation name. */
  byOperation: Record<string, number>;
  /** Units per entry kind (`usage.reserved.v1`, `usage.settled.v1`, ...). */
  byKind: Record<string, number>;
}

export interface Statement {
  tenant: string;
  periodStart: string;
  periodEnd: string;
  version: number;
  isFinal: boolean;
  usage: PeriodUsage;
  price: PriceBreakdown;
  computedAtMs: number;
}

export type WarningStatus = 'pending' | 'delivered' | 'skipped' | 'failed';

/** The statuses a warning record ends in; it never changes again. */
export type FinishedWarningStatus = Exclude<WarningStatus, 'pending'>;

/** Longest `failure` text kept on a failed warning record. */
const MAX_FAILURE_CHARS = 500;

export interface WarningRecord {
  status: WarningStatus;
  idempotencyKey: string;
  createdAtMs: number;
  finishedAtMs: number | null;
  /** Why the workflow gave up on it (status `failed` only). */
  failure: string | null;
}

export interface WarningRef {
  tenant: TenantId;
  /** ISO start of the period the threshold was crossed in. */
  periodStart: string;
  limitId: string;
  percent: number;
}

const partitionKey = (tenant: string, periodStart: string): AttributeValue => ({ S: `tenant#${tenant}#period#${periodStart}` });
const warningSk = (ref: WarningRef): string => `warning#${parseLimitId(ref.limitId)}#${ref.percent}`;

const wrap = (error: unknown, what: string): DependencyError =>
  new DependencyError('DYNAMODB_UNAVAILABLE', `DynamoDB did not ${what}`, { cause: error });

function decodeWarning(item: AttributeMap): WarningRecord {
  const status = item['status']?.S;
  if (status !== 'pending' && status !== 'delivered' && status !== 'skipped' && status !== 'failed') {
    throw new InvariantError(`warning record has status ${String(status)}`);
  }
  return {
    status,
    idempotencyKey: item['idempotencyKey']?.S ?? '',
    createdAtMs: Number(item['createdAtMs']?.N ?? '0'),
    finishedAtMs: item['finishedAtMs']?.N === undefined ? null : Number(item['finishedAtMs'].N),
    failure: item['failure']?.S ?? null,
  };
}

function decodeStatement(tenant: string, item: AttributeMap): Statement {
  return {
    tenant,
    periodStart: item['periodStart']?.S ?? '',
    periodEnd: item['periodEnd']?.S ?? '',
    version: Number(item['version']?.N ?? '0'),
    isFinal: item['isFinal']?.BOOL ?? false,
    usage: {
      units: Number(item['units']?.N ?? '0'),
      entries: Number(item['entries']?.N ?? '0'),
      lateUnits: Number(item['lateUnits']?.N ?? '0'),
      lateEntries: Number(item['lateEntries']?.N ?? '0'),
      byOperation: JSON.parse(item['byOperation']?.S ?? '{}') as Record<string, number>,
      byKind: JSON.parse(item['byKind']?.S ?? '{}') as Record<string, number>,
    },
    price: JSON.parse(item['price']?.S ?? 'null') as PriceBreakdown,
    computedAtMs: Number(item['computedAtMs']?.N ?? '0'),
  };
}

/** Statements, period finalization and warning records in the ledger table. */
export class DynamoPeriodStore {
  private readonly table: string;

  constructor(
    private readonly client: DynamoDBClient,
    options: { tablePrefix: string },
  ) {
    this.table = ledgerTableName(options.tablePrefix);
  }

  /**
   * Sums the partition's entries (consistent reads, every page).
   * @throws DependencyError `DYNAMODB_UNAVAILABLE`
   */
  async readUsage(input: { tenant: TenantId; periodStart: string }): Promise<PeriodUsage> {
    const usage: PeriodUsage = { units: 0, entries: 0, lateUnits: 0, lateEntries: 0, byOperation: {}, byKind: {} };
    let startKey: AttributeMap | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new QueryCommand({
            TableName: this.table,
            KeyConditionExpression: 'pk = :pk AND begins_with(sk, :entry)',
            ExpressionAttributeValues: { ':pk': partitionKey(input.tenant, input.periodStart), ':entry': { S: 'entry#' } },
            ProjectionExpression: 'amount, operation, kind, lateOf',
            ConsistentRead: true,
            ...(startKey === undefined ? {} : { ExclusiveStartKey: startKey }),
          }),
        );
      } catch (error) {
        throw wrap(error, 'read the period entries');
      }
      for (const item of page.Items ?? []) {
        const amount = Number(item['amount']?.N ?? 'NaN');
        if (!Number.isSafeInteger(amount)) throw new InvariantError(`ledger entry of ${input.tenant} has amount ${item['amount']?.N}`);
        usage.units += amount;
        usage.entries += 1;
        if (item['lateOf']?.S !== undefined) {
          usage.lateUnits += amount;
          usage.lateEntries += 1;
        }
        const operation = item['operation']?.S ?? 'unknown';
        usage.byOperation[operation] = (usage.byOperation[operation] ?? 0) + amount;
        const kind = item['kind']?.S ?? 'unknown';
        usage.byKind[kind] = (usage.byKind[kind] ?? 0) + amount;
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey !== undefined);
    return usage;
  }

  /**
   * Computes the statement of a period from its entries and writes it as
   * `version`, unless a statement of this version or a later one is there
   * (a replayed close, a retried activity): then that one is returned and
   * nothing changes.
   * @throws DependencyError `DYNAMODB_UNAVAILABLE`
   */
  async writeStatement(input: {
    tenant: TenantId;
    periodStart: string;
    periodEnd: string;
    version: number;
    isFinal: boolean;
    price: PriceSpec;
    nowMs: number;
  }): Promise<{ statement: Statement; isWritten: boolean }> {
    const existing = await this.getStatement(input);
    if (existing !== undefined && existing.version >= input.version) return { statement: existing, isWritten: false };
    const usage = await this.readUsage(input);
    const price = priceUsage(input.price, usage.units);
    const statement: Statement = {
      tenant: input.tenant,
      periodStart: input.periodStart,
      periodEnd: input.periodEnd,
      version: input.version,
      isFinal: input.isFinal,
      usage,
      price,
      computedAtMs: input.nowMs,
    };
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.table,
          Item: {
            pk: partitionKey(input.tenant, input.periodStart),
            sk: { S: 'statement' },
            periodStart: { S: input.periodStart },
            periodEnd: { S: input.periodEnd },
            version: { N: String(input.version) },
            isFinal: { BOOL: input.isFinal },
            units: { N: String(usage.units) },
            entries: { N: String(usage.entries) },
            lateUnits: { N: String(usage.lateUnits) },
            lateEntries: { N: String(usage.lateEntries) },
            byOperation: { S: JSON.stringify(usage.byOperation) },
            byKind: { S: JSON.stringify(usage.byKind) },
            price: { S: JSON.stringify(price) },
            currency: { S: price.currency },
            totalMicros: { N: String(price.totalMicros) },
            computedAtMs: { N: String(input.nowMs) },
          },
          ConditionExpression: 'attribute_not_exists(pk) OR version < :version',
          ExpressionAttributeValues: { ':version': { N: String(input.version) } },
        }),
      );
      return { statement, isWritten: true };
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw wrap(error, 'write the statement');
    }
    const winner = await this.getStatement(input);
    if (winner === undefined) throw new InvariantError(`statement of ${input.tenant} ${input.periodStart} vanished`);
    return { statement: winner, isWritten: false };
  }

  /** The period's statement, or undefined before its close. */
  async getStatement(input: { tenant: TenantId; periodStart: string }): Promise<Statement | undefined> {
    let reply;
    try {
      reply = await this.client.send(
        new GetItemCommand({
          TableName: this.table,
          Key: { pk: partitionKey(input.tenant, input.periodStart), sk: { S: 'statement' } },
          ConsistentRead: true,
        }),
      );
    } catch (error) {
      throw wrap(error, 'read the statement');
    }
    return reply.Item === undefined ? undefined : decodeStatement(input.tenant, reply.Item);
  }

  /**
   * Finalizes a period: from now on the ledger credits its events to
   * `nextPeriodStart`. Idempotent: the first finalization's time and next
   * period stay.
   * @returns when the period was finalized (the first time)
   */
  async finalize(input: {
    tenant: TenantId;
    periodStart: string;
    nextPeriodStart: string;
    nowMs: number;
  }): Promise<{ finalizedAtMs: number }> {
    if (!(input.nextPeriodStart > input.periodStart)) {
      throw new ValidationError('INVALID_INPUT', `nextPeriodStart ${input.nextPeriodStart} must follow ${input.periodStart}`);
    }
    let reply;
    try {
      reply = await this.client.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key: { pk: partitionKey(input.tenant, input.periodStart), sk: { S: 'balance' } },
          UpdateExpression:
            'SET finalizedAtMs = if_not_exists(finalizedAtMs, :now), nextPeriodStart = if_not_exists(nextPeriodStart, :next)',
          ExpressionAttributeValues: { ':now': { N: String(input.nowMs) }, ':next': { S: input.nextPeriodStart } },
          ReturnValues: 'ALL_NEW',
        }),
      );
    } catch (error) {
      throw wrap(error, 'finalize the period');
    }
    return { finalizedAtMs: Number(reply.Attributes?.['finalizedAtMs']?.N ?? String(input.nowMs)) };
  }

  /** When the period was finalized, or null while it takes entries. */
  async finalizedAtMs(input: { tenant: TenantId; periodStart: string }): Promise<number | null> {
    let reply;
    try {
      reply = await this.client.send(
        new GetItemCommand({
          TableName: this.table,
          Key: { pk: partitionKey(input.tenant, input.periodStart), sk: { S: 'balance' } },
          ConsistentRead: true,
        }),
      );
    } catch (error) {
      throw wrap(error, 'read the balance');
    }
    const value = reply.Item?.['finalizedAtMs']?.N;
    return value === undefined ? null : Number(value);
  }

  /**
   * Records a warning as pending, or finds its record (any status): the
   * record exists before any delivery attempt, so a delivered warning is
   * recognised on every retry.
   */
  async beginWarning(ref: WarningRef & { idempotencyKey: string; nowMs: number }): Promise<WarningRecord> {
    const key = { pk: partitionKey(ref.tenant, ref.periodStart), sk: { S: warningSk(ref) } };
    const record: WarningRecord = {
      status: 'pending',
      idempotencyKey: ref.idempotencyKey,
      createdAtMs: ref.nowMs,
      finishedAtMs: null,
      failure: null,
    };
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.table,
          Item: {
            ...key,
            status: { S: 'pending' },
            limitId: { S: ref.limitId },
            percent: { N: String(ref.percent) },
            idempotencyKey: { S: ref.idempotencyKey },
            createdAtMs: { N: String(ref.nowMs) },
          },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return record;
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw wrap(error, 'record the warning');
    }
    const existing = await this.getWarning(ref);
    if (existing === undefined) throw new InvariantError(`warning ${warningSk(ref)} exists and cannot be read`);
    return existing;
  }

  /**
   * pending → delivered | skipped | failed, once (`failure` is kept with failed only, cut to 500 chars).
   * @returns the record after the call (another status when it was already finished)
   */
  async finishWarning(ref: WarningRef & { status: FinishedWarningStatus; nowMs: number; failure?: string }): Promise<WarningRecord> {
    const failure = ref.status === 'failed' ? (ref.failure ?? 'unknown').slice(0, MAX_FAILURE_CHARS) : undefined;
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key: { pk: partitionKey(ref.tenant, ref.periodStart), sk: { S: warningSk(ref) } },
          UpdateExpression:
            failure === undefined
              ? 'SET #status = :status, finishedAtMs = :now'
              : 'SET #status = :status, finishedAtMs = :now, failure = :failure',
          ConditionExpression: '#status = :pending',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':status': { S: ref.status },
            ':pending': { S: 'pending' },
            ':now': { N: String(ref.nowMs) },
            ...(failure === undefined ? {} : { ':failure': { S: failure } }),
          },
        }),
      );
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw wrap(error, 'finish the warning');
    }
    const record = await this.getWarning(ref);
    if (record === undefined) throw new InvariantError(`warning ${warningSk(ref)} was finished before it was recorded`);
    return record;
  }

  async getWarning(ref: WarningRef): Promise<WarningRecord | undefined> {
    let reply;
    try {
      reply = await this.client.send(
        new GetItemCommand({
          TableName: this.table,
          Key: { pk: partitionKey(ref.tenant, ref.periodStart), sk: { S: warningSk(ref) } },
          ConsistentRead: true,
        }),
      );
    } catch (error) {
      throw wrap(error, 'read the warning');
    }
    return reply.Item === undefined ? undefined : decodeWarning(reply.Item);
  }
}
