/**
 * Planning a batch of ledger entries into DynamoDB transactions. Pure.
 *
 * DynamoDB rules this respects: a TransactWriteItems holds at most
 * `maxItems` (100) operations, and no item twice. So entries are grouped per
 * balance (tenant, period); each group's entries go with ONE balance update
 * carrying their sum, and a group too large for one transaction is split into
 * chunks, each with its own balance update (each transaction stays atomic:
 * its entries and the balance move together or not at all).
 */

/** The part of a ledger entry the planner needs. */
export interface PlannableEntry {
  tenant: string;
  periodStart: string;
  eventId: string;
  amount: number;
}

/** One balance's share of a transaction: its entries and their summed amount. */
export interface BalanceChunk<E extends PlannableEntry> {
  tenant: string;
  periodStart: string;
  entries: E[];
  /** Sum of the entries' amounts (safe integer). */
  amount: number;
}

/** Groups entries per balance and packs them into transactions of at most `maxItems` operations. */
export function planLedgerTransactions<E extends PlannableEntry>(entries: readonly E[], maxItems: number): BalanceChunk<E>[][] {
  if (!Number.isInteger(maxItems) || maxItems < 2) throw new RangeError(`maxItems must be an integer >= 2, got ${maxItems}`);
  const groups = new Map<string, E[]>();
  for (const entry of entries) {
    const key = `${entry.tenant}#${entry.periodStart}`;
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [entry]);
    else group.push(entry);
  }
  const chunks: BalanceChunk<E>[] = [];
  for (const group of groups.values()) {
    for (let start = 0; start < group.length; start += maxItems - 1) {
      const part = group.slice(start, start + maxItems - 1);
      const first = part[0];
      if (first === undefined) continue;
      const amount = part.reduce((sum, entry) => sum + entry.amount, 0);
      if (!Number.isSafeInteger(amount)) throw new RangeError(`balance move of ${first.tenant} ${first.periodStart} is not a safe integer`);
      chunks.push({ tenant: first.tenant, periodStart: first.periodStart, entries: part, amount });
    }
  }
  const transactions: BalanceChunk<E>[][] = [];
  let current: BalanceChunk<E>[] = [];
  let items = 0;
  for (const chunk of chunks) {
    const size = chunk.entries.length + 1;
    if (items + size > maxItems) {
      transactions.push(current);
      current = [];
      items = 0;
    }
    current.push(chunk);
    items += size;
  }
  if (current.length > 0) transactions.push(current);
  return transactions;
}
