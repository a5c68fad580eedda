/** The tenant view's records: statements of past periods (with their downloads) and receipts looked up by id. */
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

export function Receipts() {
  const [id, setId] = useState('');
  const [result, setResult] = useState<{ receipt: ReceiptData | null; error?: string } | undefined>(undefined);
  const search = async (event: Event): Promise<void> => {
    event.preventDefault();
    try {
      const data = await gql<{ receipt: ReceiptData | null }>(
        '/usage/graphql',
        'query($id: String!) { receipt(id: $id) { id kind operation units reservedUnits at periodStart settlement { units at } } }',
        { id: id.trim() },
      );
      setResult({ receipt: data.receipt });
    } catch (error) {
      setResult({ receipt: null, error: error instanceof Error ? error.message : String(error) });
    }
  };
  return (
    <Section title="Receipts" id="receipts">
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
      <p class="muted small">Search by id (a response's extensions.cost.receipt). Search by time is not offered by the usage API yet.</p>
      {result === undefined ? null : result.error !== undefined ? (
        <p class="error" role="alert">
          {result.error}
        </p>
      ) : result.receipt === null ? (
        <Empty>No receipt with this id (unknown, or not in the ledger yet).</Empty>
      ) : (
        <dl class="receipt" data-testid="receipt">
          <dt>Operation</dt>
          <dd>{result.receipt.operation}</dd>
          <dt>Units charged</dt>
          <dd data-field="receipt-units">{fmtUnits(result.receipt.units)}</dd>
          <dt>Reserved</dt>
          <dd>{fmtUnits(result.receipt.reservedUnits)}</dd>
          <dt>At</dt>
          <dd>{fmtTime(result.receipt.at)}</dd>
          <dt>Settlement</dt>
          <dd>
            {result.receipt.settlement === null
              ? 'none'
              : `${fmtUnits(result.receipt.settlement.units)} at ${fmtTime(result.receipt.settlement.at)}`}
          </dd>
        </dl>
      )}
    </Section>
  );
}
