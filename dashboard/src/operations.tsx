/**
 * The operator's live figures (admin `operations`): pump lag, last full audit, breaker and spool, and decisions by
 * limit. Decisions are the answering instance's counters since it started; the page charts their increase between
 * polls (denials and deferrals by limit over time, since the page opened) and notes every poll that found the
 * breaker open or half-open (degraded-mode periods seen).
 */
import { useEffect, useRef, useState } from 'preact/hooks';
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
}

const QUERY = `{ operations { at pump { unacknowledged lagSeconds deadLetters streams } audit { finishedAt audited drifting absoluteDrift unsettled }
  breaker spooledEntries spooledOldestAgeSeconds decisions { kind limit count } } }`;

const REFUSALS = new Set(['denied', 'deferred']);

export function OperationsPanels() {
  const polled = usePolled(() => gql<{ operations: Operations }>('/admin/graphql', QUERY).then((data) => data.operations), []);
  const previous = useRef<Map<string, number> | undefined>(undefined);
  const [points, setPoints] = useState<Point[]>([]);
  const [degraded, setDegraded] = useState<{ at: string; breaker: string }[]>([]);
  const ops = polled.data;
  useEffect(() => {
    if (ops === undefined) return;
    const counts = new Map(ops.decisions.filter((d) => REFUSALS.has(d.kind)).map((d) => [`${d.kind} · ${d.limit}`, d.count]));
    const before = previous.current;
    previous.current = counts;
    if (before !== undefined) {
      const fresh = [...counts].map(([key, count]) => ({ start: ops.at, key, units: Math.max(0, count - (before.get(key) ?? 0)) }));
      if (fresh.length > 0) setPoints((all) => [...all, ...fresh].slice(-2_000));
    }
    if (ops.breaker !== 'closed') setDegraded((all) => [...all, { at: ops.at, breaker: ops.breaker }].slice(-100));
  }, [ops]);
  const refusals = (ops?.decisions ?? []).filter((d) => REFUSALS.has(d.kind) || d.kind.startsWith('degraded'));
  const times = points.map((p) => Date.parse(p.start));
  const axis = { fromMs: Math.min(...times), toMs: Math.max(...times) + 1, stepMs: Number.MAX_SAFE_INTEGER };
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
              {degraded.length === 0 ? (
                <p class="small muted">No degraded period seen since this page opened.</p>
              ) : (
                <p class="small">Degraded (breaker not closed) at: {degraded.map((d) => `${fmtTime(d.at)} (${d.breaker})`).join(', ')}</p>
              )}
            </article>
          </div>
        )}
      </Section>
      <Section title="Denials and deferrals by limit" id="refusals" polled={polled}>
        {points.some((p) => p.units > 0) ? (
          <SeriesChart points={points} axis={axis} label="denials and deferrals per poll, by limit" yLabel="requests" minSpanS={300} />
        ) : (
          <Empty>No denial or deferral since this page opened (charted per {5} s poll).</Empty>
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
