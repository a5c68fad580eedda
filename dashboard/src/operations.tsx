/**
 * The operator's live figures (admin `operations`): pump lag, last full audit, breaker and spool, the answering
 * instance's decisions by limit since it started, and the fleet's (every API process's) denials, deferrals and
 * degraded decisions by limit per minute over the last hour, with every instance's degraded-mode periods.
 */
import { gql } from './api.js';
import { SeriesChart, type Point } from './chart.js';
import { usePolled } from './poll.js';
import { Empty, Section, fmtTime, fmtUnits } from './ui.js';

interface Operations {
  at: string;
  pump: { unacknowledged: number; lagSeconds: number; deadLetters: number; streams: number };
  audit: { finishedAt: string; audited: number; drifting: number; absoluteDrift: number; unsettled: number } | null;
  breaker: string;
  spooledEntries: number;
  spooledOldestAgeSeconds: number;
  decisions: { kind: string; limit: string; count: number }[];
  fleet: {
    from: string;
    to: string;
    minutes: { minute: string; kind: string; limit: string; count: number }[];
    degraded: { instance: string; from: string; to: string | null; states: string[] }[];
  };
}

const QUERY = `{ operations { at pump { unacknowledged lagSeconds deadLetters streams } audit { finishedAt audited drifting absoluteDrift unsettled }
  breaker spooledEntries spooledOldestAgeSeconds decisions { kind limit count }
  fleet(minutes: 60) { from to minutes { minute kind limit count } degraded { instance from to states } } } }`;

const REFUSALS = new Set(['denied', 'deferred']);

function DegradedPeriods(props: { periods: Operations['fleet']['degraded'] }) {
  if (props.periods.length === 0) return <p class="small muted">No degraded period on any API process in the last hour.</p>;
  return (
    <ul class="small" data-testid="degraded-periods">
      {props.periods.map((period) => (
        <li data-testid="degraded-period">
          {period.instance}: {period.states.join(' / ')} from {fmtTime(period.from)}{' '}
          {period.to === null ? '(still degraded)' : `to ${fmtTime(period.to)}`}
        </li>
      ))}
    </ul>
  );
}

export function OperationsPanels() {
  const polled = usePolled(() => gql<{ operations: Operations }>('/admin/graphql', QUERY).then((data) => data.operations), []);
  const ops = polled.data;
  const refusals = (ops?.decisions ?? []).filter((d) => REFUSALS.has(d.kind) || d.kind.startsWith('degraded'));
  const fleet = ops?.fleet;
  const points: Point[] = (fleet?.minutes ?? []).map((m) => ({ start: m.minute, key: `${m.kind} · ${m.limit}`, units: m.count }));
  const axis = { fromMs: Date.parse(fleet?.from ?? '0'), toMs: Date.parse(fleet?.to ?? '0'), stepMs: 60_000 };
  const totals = new Map<string, { kind: string; limit: string; count: number }>();
  for (const m of fleet?.minutes ?? []) {
    const key = `${m.kind}|${m.limit}`;
    totals.set(key, { kind: m.kind, limit: m.limit, count: (totals.get(key)?.count ?? 0) + m.count });
  }
  return (
    <>
      <Section title="Pump, audit and degraded mode" id="operations" polled={polled}>
        {ops === undefined ? (
          <Empty>No figures yet.</Empty>
        ) : (
          <div class="cards">
            <article
              class={`card level-${ops.pump.lagSeconds > 30 ? 'red' : ops.pump.unacknowledged > 0 ? 'amber' : 'ok'}`}
              data-testid="pump"
            >
              <h3>Pump lag</h3>
              <p class="figure">
                <span data-field="pump-lag">{ops.pump.lagSeconds.toFixed(1)}</span> s
              </p>
              <p class="small">
                <span data-field="pump-backlog">{fmtUnits(ops.pump.unacknowledged)}</span> entries not yet in the ledger ·{' '}
                {fmtUnits(ops.pump.deadLetters)} dead letters · {ops.pump.streams} streams
              </p>
            </article>
            <article class={`card level-${ops.audit !== null && ops.audit.drifting > 0 ? 'red' : 'ok'}`} data-testid="audit">
              <h3>Ledger audit (all tenants)</h3>
              {ops.audit === null ? (
                <Empty>No full audit has run yet.</Empty>
              ) : (
                <p class="small">
                  {fmtTime(ops.audit.finishedAt)}: {fmtUnits(ops.audit.audited)} tenant periods,{' '}
                  <span data-field="drifting">{fmtUnits(ops.audit.drifting)}</span> drifting (Σ|drift| {fmtUnits(ops.audit.absoluteDrift)}),{' '}
                  {fmtUnits(ops.audit.unsettled)} unsettled
                </p>
              )}
            </article>
            <article class={`card level-${ops.breaker === 'closed' ? 'ok' : 'red'}`} data-testid="breaker">
              <h3>Decider</h3>
              <p class="figure">
                breaker <span data-field="breaker">{ops.breaker}</span>
              </p>
              <p class="small">
                {fmtUnits(ops.spooledEntries)} degraded-mode decisions spooled
                {ops.spooledEntries > 0 ? `, oldest ${ops.spooledOldestAgeSeconds.toFixed(0)} s` : ''}
              </p>
              <DegradedPeriods periods={ops.fleet.degraded} />
            </article>
          </div>
        )}
      </Section>
      <Section title="Denials and deferrals by limit (every API process)" id="refusals" polled={polled}>
        {points.length > 0 ? (
          <SeriesChart
            points={points}
            axis={axis}
            label="denials, deferrals and degraded decisions per minute, by limit"
            yLabel="requests"
          />
        ) : (
          <Empty>No denial, deferral or degraded decision in the last hour on any API process.</Empty>
        )}
        {totals.size === 0 ? null : (
          <table>
            <caption>Last hour, every API process (per-minute counts flushed each second)</caption>
            <thead>
              <tr>
                <th scope="col">Decision</th>
                <th scope="col">Limit</th>
                <th scope="col">Count</th>
              </tr>
            </thead>
            <tbody>
              {[...totals.values()].map((d) => (
                <tr data-testid="fleet-row" data-kind={d.kind} data-limit={d.limit}>
                  <td>{d.kind}</td>
                  <td>{d.limit}</td>
                  <td data-field="count">{fmtUnits(d.count)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {refusals.length === 0 ? (
          <Empty>No denial, deferral or degraded decision on this instance since it started.</Empty>
        ) : (
          <table>
            <caption>Since the answering instance started</caption>
            <thead>
              <tr>
                <th scope="col">Decision</th>
                <th scope="col">Limit</th>
                <th scope="col">Count</th>
              </tr>
            </thead>
            <tbody>
              {refusals.map((d) => (
                <tr data-testid="refusal-row" data-kind={d.kind} data-limit={d.limit}>
                  <td>{d.kind}</td>
                  <td>{d.limit}</td>
                  <td data-field="count">{fmtUnits(d.count)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
    </>
  );
}
