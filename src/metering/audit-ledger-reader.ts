/**
 * The audit's reads of the ledger: a tenant and period's balance and which of
 * a set of in-flight events the ledger already holds, as of one moment.
 * Read-only.
 */
import { TransactGetItemsCommand, type AttributeValue, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DependencyError, type TenantId } from '../shared/index.js';
import { ledgerTableName } from './dynamo.js';
import { partitionKey, type AttributeMap } from './ledger-items.js';

/** A period's balance and the in-flight events its ledger holds, read at one moment. */
export interface LedgerSnapshot {
  balance: { amount: number; entries: number; lateAmount: number; lateCredited: number };
  heldEventIds: Set<string>;
}

/** Events per TransactGetItems (100 items: two per event, `entry#` and `late#`). */
const EVENTS_PER_READ = 50;

/** Reads the ledger for the audit (`MeteringAuditor`). */
export class AuditLedgerReader {
  private readonly table: string;

  constructor(
    private readonly dynamo: DynamoDBClient,
    options: { tablePrefix: string },
  ) {
    this.table = ledgerTableName(options.tablePrefix);
  }

  /**
   * The balance and which of `eventIds` the ledger holds, as of one moment:
   * one TransactGetItems when they fit, else held-ids, balance, held-ids again
   * (entries and balance move in one transaction and entries are never removed,
   * so when the second check finds nothing new, the balance counts exactly the
   * first check's events). Undefined when an event was ledgered in between.
   */
  async snapshot(input: { tenant: TenantId; periodStart: string; eventIds: readonly string[] }): Promise<LedgerSnapshot | undefined> {
    const { tenant, periodStart, eventIds } = input;
    const pk = { S: partitionKey(tenant, periodStart) };
    if (eventIds.length <= EVENTS_PER_READ - 1) {
      const [balanceItem, ...rest] = await this.transactGet(tenant, periodStart, [
        { pk, sk: { S: 'balance' } },
        ...this.eventKeys(pk, eventIds),
      ]);
      return { balance: balanceOf(balanceItem), heldEventIds: heldOf(eventIds, rest) };
    }
    const first = await this.heldEventIds(tenant, periodStart, eventIds);
    const [balanceItem] = await this.transactGet(tenant, periodStart, [{ pk, sk: { S: 'balance' } }]);
    const second = await this.heldEventIds(
      tenant,
      periodStart,
      eventIds.filter((eventId) => !first.has(eventId)),
    );
    if (second.size > 0) return undefined;
    return { balance: balanceOf(balanceItem), heldEventIds: first };
  }

  private eventKeys(pk: AttributeValue, eventIds: readonly string[]): Record<string, AttributeValue>[] {
    return eventIds.flatMap((eventId) => [
      { pk, sk: { S: `entry#${eventId}` } },
      { pk, sk: { S: `late#${eventId}` } },
    ]);
  }

  private async heldEventIds(tenant: TenantId, periodStart: string, eventIds: readonly string[]): Promise<Set<string>> {
    const pk = { S: partitionKey(tenant, periodStart) };
    const held = new Set<string>();
    for (let start = 0; start < eventIds.length; start += EVENTS_PER_READ) {
      const chunk = eventIds.slice(start, start + EVENTS_PER_READ);
      for (const eventId of heldOf(chunk, await this.transactGet(tenant, periodStart, this.eventKeys(pk, chunk)))) held.add(eventId);
    }
    return held;
  }

  private async transactGet(
    tenant: TenantId,
    periodStart: string,
    keys: Record<string, AttributeValue>[],
  ): Promise<(AttributeMap | undefined)[]> {
    try {
      const reply = await this.dynamo.send(
        new TransactGetItemsCommand({ TransactItems: keys.map((Key) => ({ Get: { TableName: this.table, Key } })) }),
      );
      return (reply.Responses ?? []).map((response) => response.Item);
    } catch (error) {
      throw new DependencyError('DYNAMODB_UNAVAILABLE', `audit read of the ledger of ${tenant} ${periodStart} failed`, { cause: error });
    }
  }
}

function balanceOf(item: AttributeMap | undefined): LedgerSnapshot['balance'] {
  const number = (name: string): number => Number(item?.[name]?.N ?? '0');
  return { amount: number('amount'), entries: number('entries'), lateAmount: number('lateAmount'), lateCredited: number('lateCredited') };
}

/** The ids whose `entry#` or `late#` item came back (items in `eventKeys` order). */
function heldOf(eventIds: readonly string[], items: readonly (AttributeMap | undefined)[]): Set<string> {
  const held = new Set<string>();
  eventIds.forEach((eventId, index) => {
    if (items[2 * index] !== undefined || items[2 * index + 1] !== undefined) held.add(eventId);
  });
  return held;
}
