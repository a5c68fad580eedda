/**
 * Statements as CSV: one row per statement line (its units per operation), then a `total` row per
 * statement with its price. Money in micro-units of the currency, as everywhere (integers).
 */
import type { Statement } from '../../billing/index.js';

const HEADER = ['period_start', 'period_end', 'version', 'is_final', 'line', 'operation', 'units', 'currency', 'amount_micros'];

/** A CSV field: quoted when it holds a comma, a quote or a line break (RFC 4180). */
function field(value: string | number | boolean): string {
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function statementsCsv(statements: readonly Statement[]): string {
  const rows: (string | number | boolean)[][] = [HEADER];
  for (const statement of statements) {
    const head = [statement.periodStart, statement.periodEnd, statement.version, statement.isFinal];
    for (const operation of Object.keys(statement.usage.byOperation).sort()) {
      rows.push([...head, 'usage', operation, statement.usage.byOperation[operation] ?? 0, statement.price.currency, '']);
    }
    rows.push([...head, 'base-fee', '', '', statement.price.currency, statement.price.baseFeeMicros]);
    statement.price.tiers.forEach((tier) => {
      rows.push([...head, 'overage-tier', '', tier.units, statement.price.currency, tier.amountMicros]);
    });
    rows.push([...head, 'total', '', statement.price.units, statement.price.currency, statement.price.totalMicros]);
  }
  return `${rows.map((row) => row.map(field).join(',')).join('\r\n')}\r\n`;
}
