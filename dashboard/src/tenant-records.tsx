/** The tenant view's records: statements of past periods (with their downloads) and receipts looked up by id or by time. */
import { useState } from 'preact/hooks';
import { gql } from './api.js';
import { usePolled } from './poll.js';
import { Empty, Section, fmtMoney, fmtTime, fmtUnits } from './ui.js';

export interface Bill {
  currency: string;
  units: number;
  includedUnits: number;
  overageUnits: number;
  baseFeeMicros: number;
  totalMicros: number;
  tiers: { units: number; unitPriceMicros: number; amountMicros: number }[];
}

/** The fields of a bill, as the usage API answers them. */
export const BILL = 'currency units includedUnits overageUnits baseFeeMicros totalMicros tiers { units unitPriceMicros amountMicros }';

interface StatementData {
  periodStart: string;
  periodEnd: string;
  version: number;
  isFinal: boolean;
  units: number;
  price: Bill;
}

export function Statements() {
  const polled = usePolled(
    () =>
      gql<{ statements: StatementData[] }>(
        '/usage/graphql',
        `{ statements(last: 12) { periodStart periodEnd version isFinal units price { ${BILL} } } }`,
      ).then((data) => data.statements),
    [],
    60_000,
  );
  const actions = (
    <p class="downloads">
      <a href="/usage/statements.csv?last=12" download="statements.csv" data-testid="download-csv">
        CSV
      </a>{' '}
      <a href="/usage/statements.json?last=12" download="statements.json" data-testid="download-json">
        JSON
      </a>
    </p>
  );
  const rows = polled.data ?? [];
  return (
    <Section title="Statements of past periods" id="statements" polled={polled} actions={actions}>
      {rows.length === 0 ? (
        <Empty>No closed period yet: statements appear when a period closes.</Empty>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Period</th>
              <th scope="col">Units</th>
              <th scope="col">Total</th>
              <th scope="col">Final</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((row) => (
              <tr data-testid="statement-row">
                <td>
                  {fmtTime(row.periodStart)} → {fmtTime(row.periodEnd)}
                </td>
                <td>{fmtUnits(row.units)}</td>
                <td>{fmtMoney(row.price.totalMicros, row.price.currency)}</td>
                <td>{row.isFinal ? 'yes' : `v${row.version}`}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  );
}

interface ReceiptData {
  id: string;
  kind: string;
  operation: string;
  units: number;
  reservedUnits: number;
  at: string;
  periodStart: string;
  settlement: { units: number; at: string } | null;
}

const RECEIPT_FIELDS = 'id kind operation units reservedUnits at periodStart settlement { units at }';

function ReceiptDetails({ receipt }: { receipt: ReceiptData }) {
  return (
    <dl class="receipt" data-testid="receipt">
      <dt>Operation</dt>
      <dd>{receipt.operation}</dd>
      <dt>Units charged</dt>
      <dd data-field="receipt-units">{fmtUnits(receipt.units)}</dd>
      <dt>Reserved</dt>
      <dd>{fmtUnits(receipt.reservedUnits)}</dd>
      <dt>At</dt>
      <dd>{fmtTime(receipt.at)}</dd>
      <dt>Settlement</dt>
      <dd>{receipt.settlement === null ? 'none' : `${fmtUnits(receipt.settlement.units)} at ${fmtTime(receipt.settlement.at)}`}</dd>
    </dl>
  );
}

function ReceiptById() {
  const [id, setId] = useState('');
  const [result, setResult] = useState<{ receipt: ReceiptData | null; error?: string } | undefined>(undefined);
  const search = async (event: Event): Promise<void> => {
    event.preventDefault();
    try {
      const data = await gql<{ receipt: ReceiptData | null }>(
        '/usage/graphql',
        `query($id: String!) { receipt(id: $id) { ${RECEIPT_FIELDS} } }`,
        {
          id: id.trim(),
        },
      );
      setResult({ receipt: data.receipt });
    } catch (error) {
      setResult({ receipt: null, error: error instanceof Error ? error.message : String(error) });
    }
  };
  return (
    <>
      <form onSubmit={(event) => void search(event)} class="inline-form">
        <label for="receipt-id">Receipt id</label>
        <input
          id="receipt-id"
          value={id}
          onInput={(event) => setId(event.currentTarget.value)}
          placeholder="extensions.cost.receipt"
          autocomplete="off"
        />
        <button type="submit">Find</button>
      </form>
      {result === undefined ? null : result.error !== undefined ? (
        <p class="error" role="alert">
          {result.error}
        </p>
      ) : result.receipt === null ? (
        <Empty>No receipt with this id (unknown, or not in the ledger yet).</Empty>
      ) : (
        <ReceiptDetails receipt={result.receipt} />
      )}
    </>
  );
}

/** A `datetime-local` value (UTC, to the minute) of an instant. */
const localValue = (ms: number): string => new Date(ms).toISOString().slice(0, 16);
/** The instant of a `datetime-local` value read as UTC; NaN when it is not one. */
const fromLocal = (value: string): number => Date.parse(`${value}:00Z`);

interface TimeSearch {
  from: string;
  to: string;
  cursors: (string | null)[];
}

function ReceiptsByTime() {
  const [from, setFrom] = useState(() => localValue(Date.now() - 86_400_000));
  const [to, setTo] = useState(() => localValue(Date.now() + 60_000));
  const [query, setQuery] = useState<TimeSearch | undefined>(undefined);
  const [page, setPage] = useState<{ items: ReceiptData[]; cursor: string | null; error?: string } | undefined>(undefined);
  const run = async (next: TimeSearch): Promise<void> => {
    setQuery(next);
    try {
      const data = await gql<{ receipts: { items: ReceiptData[]; cursor: string | null } }>(
        '/usage/graphql',
        `query($from: String!, $to: String!, $after: String) { receipts(from: $from, to: $to, first: 20, after: $after) { items { ${RECEIPT_FIELDS} } cursor } }`,
        { from: next.from, to: next.to, after: next.cursors.at(-1) ?? null },
      );
      setPage(data.receipts);
    } catch (error) {
      setPage({ items: [], cursor: null, error: error instanceof Error ? error.message : String(error) });
    }
  };
  const submit = (event: Event): void => {
    event.preventDefault();
    const [fromMs, toMs] = [fromLocal(from), fromLocal(to)];
    if (Number.isNaN(fromMs) || Number.isNaN(toMs)) {
      setPage({ items: [], cursor: null, error: 'from and to must be dates and times' });
      return;
    }
    void run({ from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString(), cursors: [null] });
  };
  return (
    <>
      <form onSubmit={submit} class="inline-form" data-testid="receipt-time-form">
        <label for="receipts-from">From (UTC)</label>
        <input id="receipts-from" type="datetime-local" value={from} onInput={(event) => setFrom(event.currentTarget.value)} />
        <label for="receipts-to">To (UTC)</label>
        <input id="receipts-to" type="datetime-local" value={to} onInput={(event) => setTo(event.currentTarget.value)} />
        <button type="submit">Search by time</button>
      </form>
      {page === undefined || query === undefined ? null : page.error !== undefined ? (
        <p class="error" role="alert">
          {page.error}
        </p>
      ) : page.items.length === 0 ? (
        <Empty>No receipt in this range (the ledger fills a few seconds after each request).</Empty>
      ) : (
        <div class="scroll" data-testid="receipt-results" data-from={query.from} data-to={query.to}>
          <table class="wide">
            <thead>
              <tr>
                <th scope="col">At</th>
                <th scope="col">Operation</th>
                <th scope="col">Units</th>
                <th scope="col">Receipt</th>
              </tr>
            </thead>
            <tbody>
              {page.items.map((receipt) => (
                <tr data-testid="receipt-row" data-receipt={receipt.id}>
                  <td>{fmtTime(receipt.at)}</td>
                  <td>{receipt.operation}</td>
                  <td data-field="units">{fmtUnits(receipt.units)}</td>
                  <td class="small">{receipt.id}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {query === undefined ? null : (
        <p class="pager">
          <button
            type="button"
            disabled={query.cursors.length === 1}
            onClick={() => void run({ ...query, cursors: query.cursors.slice(0, -1) })}
          >
            Newer
          </button>
          <button
            type="button"
            disabled={page?.cursor === null || page?.cursor === undefined}
            onClick={() =>
              page?.cursor !== undefined && page.cursor !== null && void run({ ...query, cursors: [...query.cursors, page.cursor] })
            }
          >
            Older
          </button>
        </p>
      )}
    </>
  );
}

export function Receipts() {
  return (
    <Section title="Receipts" id="receipts">
      <p class="muted small">By id (a response's extensions.cost.receipt), or every receipt in a time range, newest first.</p>
      <ReceiptById />
      <ReceiptsByTime />
    </Section>
  );
}
