/** The tenant view: its limits, usage over time, projected bill, statements, receipts and warnings (all from /usage/graphql). */
import { useState } from 'preact/hooks';
import { gql } from './api.js';
import { SeriesChart, type Point } from './chart.js';
import { usePolled } from './poll.js';
import { Jobs } from './tenant-jobs.js';
import { BILL, Receipts, Statements, type Bill } from './tenant-records.js';
import { Empty, Section, fmtDuration, fmtMoney, fmtTime, fmtUnitPrice, fmtUnits } from './ui.js';

export interface Limit {
  id: string;
  kind: string;
  mode: string;
  remaining: number;
  resetMs: number;
  usedUnits: number | null;
  limitUnits: number | null;
  thresholdsPercent: number[];
  reachedPercents: number[];
}
export interface UsageData {
  usage: {
    now: string;
    limits: Limit[];
    period: {
      start: string;
      end: string;
      usedUnits: number;
      includedUnits: number | null;
      projectedUnits: number;
      projectedBill: Bill | null;
    };
    warnings: { limitId: string; percent: number; status: string; createdAt: string }[];
  };
}

export const USAGE_QUERY = `{ usage { now limits { id kind mode remaining resetMs usedUnits limitUnits thresholdsPercent reachedPercents }
  period { start end usedUnits includedUnits projectedUnits projectedBill { ${BILL} } } warnings { limitId percent status createdAt } } }`;

function level(limit: Limit): 'ok' | 'amber' | 'red' {
  const top = Math.max(0, ...limit.reachedPercents);
  return top >= 100 ? 'red' : top > 0 ? 'amber' : 'ok';
}

function LimitCard({ limit }: { limit: Limit }) {
  const hasQuota = limit.limitUnits !== null && limit.usedUnits !== null;
  const used = limit.usedUnits ?? 0;
  const whole = limit.limitUnits ?? 0;
  const overage = limit.mode === 'soft' && hasQuota && used > whole ? used - whole : 0;
  const sorted = [...limit.thresholdsPercent].sort((a, b) => a - b);
  return (
    <article class={`card level-${level(limit)}`} data-testid="limit-card" data-limit={limit.id}>
      <h3>{limit.id}</h3>
      <p class="muted small">
        {limit.kind} · {limit.mode}
      </p>
      {hasQuota ? (
        <>
          <meter
            min={0}
            max={whole}
            value={Math.min(used, whole)}
            low={whole * ((sorted[0] ?? 80) / 100)}
            high={whole * ((sorted.at(-1) ?? 100) / 100) - 1e-9}
            optimum={0}
            aria-label={`${limit.id} used`}
          />
          <p class="figure">
            <span data-field="used">{fmtUnits(used)}</span> / <span data-field="limit">{fmtUnits(whole)}</span> units
          </p>
        </>
      ) : (
        <p class="figure">
          <span data-field="remaining">{fmtUnits(limit.remaining)}</span> units left
        </p>
      )}
      <p class="small">
        resets in <span data-field="reset">{fmtDuration(limit.resetMs)}</span>
      </p>
      <p class="badges">
        {sorted.map((pct) => (
          <span class={`badge ${limit.reachedPercents.includes(pct) ? (pct >= 100 ? 'red' : 'amber') : 'idle'}`} data-threshold={pct}>
            {pct} %{limit.reachedPercents.includes(pct) ? ' reached' : ''}
          </span>
        ))}
      </p>
      {overage > 0 ? <p class="badge red">overage {fmtUnits(overage)} units (soft limit)</p> : null}
    </article>
  );
}

function BillView({ data }: { data: UsageData['usage']['period'] }) {
  const bill = data.projectedBill;
  return (
    <div data-testid="bill">
      <p>
        Period {fmtTime(data.start)} → {fmtTime(data.end)}: <strong data-field="period-used">{fmtUnits(data.usedUnits)}</strong> units so
        far, projected <strong data-field="projected-units">{fmtUnits(data.projectedUnits)}</strong>.
      </p>
      <p class="muted small">
        Assumption: the units so far, extended at the same average rate to the end of the period (linear projection).
      </p>
      {bill === null ? (
        <Empty>No account (price) is set for this tenant: no bill to project.</Empty>
      ) : (
        <table>
          <caption>Projected bill</caption>
          <tbody>
            <tr>
              <th scope="row">Included units</th>
              <td data-field="included">{fmtUnits(bill.includedUnits)}</td>
            </tr>
            <tr>
              <th scope="row">Overage units</th>
              <td data-field="overage">{fmtUnits(bill.overageUnits)}</td>
            </tr>
            <tr>
              <th scope="row">Base fee</th>
              <td>{fmtMoney(bill.baseFeeMicros, bill.currency)}</td>
            </tr>
            {bill.tiers.map((tier, i) => (
              <tr>
                <th scope="row">
                  Tier {i + 1}: {fmtUnits(tier.units)} × {fmtUnitPrice(tier.unitPriceMicros, bill.currency)}
                </th>
                <td>{fmtMoney(tier.amountMicros, bill.currency)}</td>
              </tr>
            ))}
            <tr class="total">
              <th scope="row">Projected total</th>
              <td data-field="total">{fmtMoney(bill.totalMicros, bill.currency)}</td>
            </tr>
          </tbody>
        </table>
      )}
    </div>
  );
}

type Range = '24h' | '7d' | 'period' | 'previous';

function rangeOf(
  range: Range,
  period: { start: string; end: string } | undefined,
  now: number,
): { from: string; to: string; granularity: 'HOUR' | 'DAY' } {
  const hour = 3_600_000;
  const to = new Date(Math.ceil(now / hour) * hour).toISOString();
  if (range === '24h') return { from: new Date(Math.floor(now / hour) * hour - 23 * hour).toISOString(), to, granularity: 'HOUR' };
  if (range === '7d') return { from: new Date(Math.floor(now / hour) * hour - 167 * hour).toISOString(), to, granularity: 'HOUR' };
  const start = Date.parse(period?.start ?? new Date(now).toISOString());
  const end = Date.parse(period?.end ?? new Date(now).toISOString());
  const day = 86_400_000;
  if (range === 'period')
    return {
      from: new Date(Math.floor(start / day) * day).toISOString(),
      to: new Date(Math.ceil(now / day) * day).toISOString(),
      granularity: 'DAY',
    };
  const length = end - start;
  return {
    from: new Date(Math.floor((start - length) / day) * day).toISOString(),
    to: new Date(Math.floor(start / day) * day).toISOString(),
    granularity: 'DAY',
  };
}

function UsageChart({ period }: { period: { start: string; end: string } | undefined }) {
  const [range, setRange] = useState<Range>('24h');
  const [by, setBy] = useState<'OPERATION' | 'LIMIT'>('OPERATION');
  const polled = usePolled(async () => {
    const args = { ...rangeOf(range, period, Date.now()), by };
    const data = await gql<{ usageSeries: Point[] }>(
      '/usage/graphql',
      'query($from: String!, $to: String!, $g: Granularity!, $by: SeriesBy!) { usageSeries(from: $from, to: $to, granularity: $g, by: $by) { start key units } }',
      { from: args.from, to: args.to, g: args.granularity, by },
    );
    const stepMs = args.granularity === 'HOUR' ? 3_600_000 : 86_400_000;
    return { points: data.usageSeries, axis: { fromMs: Date.parse(args.from), toMs: Date.parse(args.to), stepMs } };
  }, [range, by, period?.start]);
  const actions = (
    <div class="controls">
      <label>
        Range{' '}
        <select value={range} onChange={(event) => setRange(event.currentTarget.value as Range)} data-testid="range">
          <option value="24h">last 24 h</option>
          <option value="7d">last 7 days</option>
          <option value="period">current period</option>
          <option value="previous">previous period</option>
        </select>
      </label>
      <label>
        By{' '}
        <select value={by} onChange={(event) => setBy(event.currentTarget.value as 'OPERATION' | 'LIMIT')} data-testid="by">
          <option value="OPERATION">operation</option>
          <option value="LIMIT">limit</option>
        </select>
      </label>
    </div>
  );
  const points = polled.data?.points ?? [];
  return (
    <Section title="Usage over time" id="usage-chart" polled={polled} actions={actions}>
      {points.length === 0 ? (
        <Empty>No usage in this range yet (the ledger fills a few seconds after each request).</Empty>
      ) : (
        <SeriesChart points={points} axis={polled.data?.axis ?? { fromMs: 0, toMs: 0, stepMs: 1 }} label={`units by ${by.toLowerCase()}`} />
      )}
      <p class="muted small" data-testid="series-total">
        {fmtUnits(points.reduce((sum, point) => sum + point.units, 0))} units in range
      </p>
    </Section>
  );
}

export function TenantView() {
  const usage = usePolled(() => gql<UsageData>('/usage/graphql', USAGE_QUERY), []);
  const view = usage.data?.usage;
  return (
    <>
      <Section title="Limits" id="limits" polled={usage}>
        {view === undefined || view.limits.length === 0 ? (
          <Empty>This plan has no limits.</Empty>
        ) : (
          <div class="cards">
            {view.limits.map((limit) => (
              <LimitCard limit={limit} key={limit.id} />
            ))}
          </div>
        )}
      </Section>
      <Section title="This period and its projected bill" id="period" polled={usage}>
        {view === undefined ? <Empty>No period yet.</Empty> : <BillView data={view.period} />}
      </Section>
      <UsageChart period={view?.period} />
      <Statements />
      <Receipts />
      <Section title="Warnings sent" id="warnings" polled={usage}>
        {view === undefined || view.warnings.length === 0 ? (
          <Empty>No warning sent this period.</Empty>
        ) : (
          <table>
            <thead>
              <tr>
                <th scope="col">Limit</th>
                <th scope="col">Threshold</th>
                <th scope="col">Status</th>
                <th scope="col">At</th>
              </tr>
            </thead>
            <tbody>
              {view.warnings.map((warning) => (
                <tr data-testid="warning-row">
                  <td>{warning.limitId}</td>
                  <td>{warning.percent} %</td>
                  <td>{warning.status}</td>
                  <td>{fmtTime(warning.createdAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
      <Jobs />
    </>
  );
}
