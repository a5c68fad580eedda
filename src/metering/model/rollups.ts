/**
 * Hourly rollups of the ledger, written in the same DynamoDB transaction as
 * the entries they sum (so they are exactly the ledger, never an estimate):
 *
 *   pk `tenant#<tenant>#rollup#<YYYY-MM>` (UTC month of the event), sk `hour#<YYYY-MM-DDTHH>` (UTC hour)
 *   units (Σ amount), entries (count)
 *   sk `hour#<YYYY-MM-DDTHH>#op#<operation>`   units (Σ amount of that operation in that hour)
 *                 (an item per operation, not an attribute per operation: operation names come from clients,
 *                 and one item holding all of them would outgrow DynamoDB's 400 KB item and 4 KB update
 *                 expression under a client that names every request differently, failing the ledger's
 *                 transaction and so the whole shard's metering)
 *   sk `version`  v: moved by every transaction that moves an hour of the month (readers cache a month's
 *                 hours and re-read them only when its version moved: exact, and a year reads one month)
 *
 * An entry counts in the hour its event happened (`atMs`; the posting time when it has none), whatever
 * period partition holds it (a late credit counts in its own hour too). A year of one tenant's hours is
 * 12-13 partitions. Pure: builds items, does no I/O.
 *
 * Sizing: a rollup item is one more operation of the transaction; `packWithRollups` re-packs the
 * planned transactions so entries + balances + distinct rollups stay within DynamoDB's limit.
 */
import type { TransactWriteItem } from '@aws-sdk/client-dynamodb';
import type { BalanceChunk, PlannableEntry } from './ledger-batch.js';

/** What a rollup needs of an entry. */
export interface RollupEntry extends PlannableEntry {
  operation: string;
  atMs?: number;
}

/** The sum of one tenant's entries in one UTC hour (of one transaction, before it is ADDed). */
export interface Rollup {
  tenant: string;
  /** `YYYY-MM-DDTHH`, UTC. */
  hour: string;
  units: number;
  entries: number;
  byOperation: Map<string, number>;
}

/** `YYYY-MM-DDTHH` of an epoch ms, UTC. */
export const hourOf = (atMs: number): string => new Date(atMs).toISOString().slice(0, 13);

/** The partition key of a tenant's rollups of one UTC month (`YYYY-MM`). */
export const rollupPartition = (tenant: string, month: string): string => `tenant#${tenant}#rollup#${month}`;

/** The sort key of one hour's rollup. */
export const rollupSortKey = (hour: string): string => `hour#${hour}`;

/** The sort key of one operation's rollup in one hour. */
export const operationRollupSortKey = (hour: string, operation: string): string =>
  `${rollupSortKey(hour)}${OPERATION_SK_INFIX}${operation}`;

/** What separates the hour from the operation in an operation rollup's sort key. */
export const OPERATION_SK_INFIX = '#op#';

const rollupId = (tenant: string, hour: string): string => `${tenant}#${hour}`;

/** The entries' rollups, one per tenant and hour, in first-seen order. */
export function rollupsOf(entries: readonly RollupEntry[], postedAtMs: number): Rollup[] {
  const rollups = new Map<string, Rollup>();
  for (const entry of entries) {
    const hour = hourOf(entry.atMs ?? postedAtMs);
    const id = rollupId(entry.tenant, hour);
    let rollup = rollups.get(id);
    if (rollup === undefined) {
      rollup = { tenant: entry.tenant, hour, units: 0, entries: 0, byOperation: new Map() };
      rollups.set(id, rollup);
    }
    rollup.units += entry.amount;
    rollup.entries += 1;
    rollup.byOperation.set(entry.operation, (rollup.byOperation.get(entry.operation) ?? 0) + entry.amount);
  }
  return [...rollups.values()];
}

/** The updates that ADD a rollup to its hour's item and to each of its operations' items (each created by its first ADD). */
export function rollupUpdates(table: string, rollup: Rollup): TransactWriteItem[] {
  const pk = { S: rollupPartition(rollup.tenant, rollup.hour.slice(0, 7)) };
  const hourItem: TransactWriteItem = {
    Update: {
      TableName: table,
      Key: { pk, sk: { S: rollupSortKey(rollup.hour) } },
      UpdateExpression: 'ADD units :units, entries :entries',
      ExpressionAttributeValues: { ':units': { N: String(rollup.units) }, ':entries': { N: String(rollup.entries) } },
    },
  };
  const operationItems = [...rollup.byOperation].map(([operation, units]): TransactWriteItem => ({
    Update: {
      TableName: table,
      Key: { pk, sk: { S: operationRollupSortKey(rollup.hour, operation) } },
      UpdateExpression: 'ADD units :units',
      ExpressionAttributeValues: { ':units': { N: String(units) } },
    },
  }));
  return [hourItem, ...operationItems];
}

/** The version bump of a tenant's month of rollups (`YYYY-MM`). */
export function rollupVersionUpdate(table: string, tenant: string, month: string): TransactWriteItem {
  return {
    Update: {
      TableName: table,
      Key: { pk: { S: rollupPartition(tenant, month) }, sk: { S: ROLLUP_VERSION_SK } },
      UpdateExpression: 'ADD v :one',
      ExpressionAttributeValues: { ':one': { N: '1' } },
    },
  };
}

/** The sort key of a month's version item. */
export const ROLLUP_VERSION_SK = 'version';

/** Every rollup write of the entries: one ADD per tenant and hour, one version bump per tenant and month. */
export function rollupWrites(table: string, entries: readonly RollupEntry[], postedAtMs: number): TransactWriteItem[] {
  const rollups = rollupsOf(entries, postedAtMs);
  const months = new Map<string, { tenant: string; month: string }>();
  for (const rollup of rollups)
    months.set(`${rollup.tenant}#${rollup.hour.slice(0, 7)}`, { tenant: rollup.tenant, month: rollup.hour.slice(0, 7) });
  return [
    ...rollups.flatMap((rollup) => rollupUpdates(table, rollup)),
    ...[...months.values()].map(({ tenant, month }) => rollupVersionUpdate(table, tenant, month)),
  ];
}

/**
 * Re-packs planned transactions so each holds at most `maxItems` operations counting its rollups
 * (entries + one balance per chunk + one rollup per distinct tenant and hour and one per distinct tenant, hour and
 * operation + one version per distinct
 * tenant and month, + 2 spare for entries without `atMs` whose hour and month are only known when posted). A chunk cut in two becomes two chunks of the
 * same balance in consecutive transactions (never run together: same balance).
 */
export function packWithRollups<E extends RollupEntry>(
  transactions: readonly BalanceChunk<E>[][],
  maxItems: number,
  nowMs: number,
): BalanceChunk<E>[][] {
  const budget = maxItems - 2;
  const packed: BalanceChunk<E>[][] = [];
  let current: BalanceChunk<E>[] = [];
  let items = 0;
  let hours = new Set<string>();
  let operations = new Set<string>();
  let months = new Set<string>();
  const close = (): void => {
    if (current.length > 0) packed.push(current);
    current = [];
    items = 0;
    hours = new Set();
    operations = new Set();
    months = new Set();
  };
  for (const transaction of transactions) {
    for (const chunk of transaction) {
      // a transaction names a balance once: a second chunk of the same balance starts the next one
      if (current.some((held) => held.tenant === chunk.tenant && held.periodStart === chunk.periodStart)) close();
      let part: E[] = [];
      const flush = (): void => {
        if (part.length === 0) return;
        current.push({ ...chunk, entries: part, amount: part.reduce((sum, entry) => sum + entry.amount, 0) });
        part = [];
      };
      for (const entry of chunk.entries) {
        const hour = rollupId(entry.tenant, hourOf(entry.atMs ?? nowMs));
        const month = hour.slice(0, -3);
        // an entry without a time counts in the posting hour: its operation item is counted apart from any timed
        // entry's, so an hour that turns over before posting never adds an item that was not counted
        const operation = `${entry.atMs === undefined ? `${entry.tenant}#now` : hour}${OPERATION_SK_INFIX}${entry.operation}`;
        const cost = (): number =>
          1 + (part.length === 0 ? 1 : 0) + (hours.has(hour) ? 0 : 1) + (operations.has(operation) ? 0 : 1) + (months.has(month) ? 0 : 1);
        if (items + cost() > budget) {
          flush();
          close();
        }
        items += cost();
        hours.add(hour);
        operations.add(operation);
        months.add(month);
        part.push(entry);
      }
      flush();
    }
  }
  close();
  return packed;
}
