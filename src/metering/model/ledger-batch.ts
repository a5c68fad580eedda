/**
 * Planning a batch of ledger entries into DynamoDB transactions. Pure.
 *
 * DynamoDB rules this respects: a TransactWriteItems holds at most
 * `maxItems` (100) operations, and no item twice. So entries are grouped per
 * balance (tenant, period); each group's entries go with ONE balance update
 * carrying their sum, and a group too large for one transaction is split into
 * chunks, each with its own balance update (each transaction stays atomic:
 * its entries and the balance move together or not at all).
 *
 * Transactions of a batch may run side by side, but two that move the same
 * balance never do: on DynamoDB they would cancel each other
 * (TransactionConflict) and the batch would be retried for nothing.
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

/**
 * Runs `post` over the transactions, at most `inFlight` at once, never two that
 * move the same balance at the same time (in plan order otherwise). Waits for
 * every started transaction before it rejects, so a failed batch leaves nothing
 * running behind it; the first error is the one thrown.
 */
export async function runWithoutSharedBalances<E extends PlannableEntry>(
  transactions: readonly BalanceChunk<E>[][],
  inFlight: number,
  post: (transaction: BalanceChunk<E>[]) => Promise<void>,
): Promise<void> {
  const balancesOf = transactions.map((transaction) => transaction.map((chunk) => `${chunk.tenant}#${chunk.periodStart}`));
  const waiting = transactions.map((_, index) => index);
  const busy = new Set<string>();
  let running = 0;
  let failure: { error: unknown } | undefined;
  await new Promise<void>((resolveAll) => {
    const startReady = (): void => {
      if (failure === undefined) {
        for (let position = 0; position < waiting.length && running < inFlight;) {
          const index = waiting[position] ?? 0;
          const balances = balancesOf[index] ?? [];
          if (balances.some((balance) => busy.has(balance))) {
            position += 1;
            continue;
          }
          waiting.splice(position, 1);
          for (const balance of balances) busy.add(balance);
          running += 1;
          post(transactions[index] ?? []).then(
            () => finish(balances),
            (error: unknown) => {
              failure ??= { error };
              finish(balances);
            },
          );
        }
      }
      if (running === 0 && (waiting.length === 0 || failure !== undefined)) resolveAll();
    };
    const finish = (balances: string[]): void => {
      running -= 1;
      for (const balance of balances) busy.delete(balance);
      startReady();
    };
    startReady();
  });
  if (failure !== undefined) throw failure.error;
}
