/**
 * The operator's fleet-wide sections: top consumers (admin `topConsumers`: tenants ranked by units admitted, with
 * their share drawn as a <meter> bar) and the plans' shadow rollouts in progress with their would-deny counts (admin
 * `rollout(plan)` for every stored plan, in one request).
 */
import { useState } from 'preact/hooks';
import { gql } from './api.js';
import { usePolled } from './poll.js';
import { Empty, Section, fmtTime, fmtUnits } from './ui.js';

interface TopConsumers {
  window: string;
  from: string;
  to: string;
  totalUnits: number;
  tenants: number;
  items: { tenant: string; units: number; share: number }[];
}

const TOP = 10;

export const fmtShare = (share: number): string => `${(share * 100).toFixed(1)} %`;

export function TopConsumersSection() {
  const [range, setRange] = useState<'PERIOD' | 'LAST_24_HOURS'>('PERIOD');
  const polled = usePolled(
    () =>
      gql<{ topConsumers: TopConsumers }>(
        '/admin/graphql',
        'query($w: RankingWindow, $n: Int) { topConsumers(window: $w, first: $n) { window from to totalUnits tenants items { tenant units share } } }',
        { w: range, n: TOP },
      ).then((data) => data.topConsumers),
    [range],
  );
  const top = polled.data;
  const actions = (
    <label>
      Window{' '}
      <select
        value={range}
        onChange={(event) => setRange(event.currentTarget.value as 'PERIOD' | 'LAST_24_HOURS')}
        data-testid="top-window"
      >
        <option value="PERIOD">current period</option>
        <option value="LAST_24_HOURS">last 24 h</option>
      </select>
    </label>
  );
  return (
    <Section title="Top consumers" id="top-consumers" polled={polled} actions={actions}>
      {top === undefined || top.items.length === 0 ? (
        <Empty>No unit admitted in this window yet.</Empty>
      ) : (
        <div class="scroll">
          <table>
            <caption>
              {fmtUnits(top.totalUnits)} units admitted to <span data-field="top-tenants">{fmtUnits(top.tenants)}</span> tenants,{' '}
              {fmtTime(top.from)} → {fmtTime(top.to)} (units the decider admitted, net of refunds)
            </caption>
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">Tenant</th>
                <th scope="col">Units</th>
                <th scope="col">Share</th>
              </tr>
            </thead>
            <tbody>
              {top.items.map((item, rank) => (
                <tr data-testid="top-row" data-tenant={item.tenant}>
                  <td>{rank + 1}</td>
                  <td>{item.tenant}</td>
                  <td data-field="units">{fmtUnits(item.units)}</td>
                  <td class="share">
                    <meter min={0} max={1} value={item.share} aria-label={`${item.tenant} share`} />{' '}
                    <span data-field="share">{fmtShare(item.share)}</span>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Section>
  );
}

interface Rollout {
  plan: string;
  fromVersion: number;
  toVersion: number;
  status: string;
  startedAt: string;
  endsAt: string;
  limits: { limit: string; shadowId: string; wouldDeny: number }[];
}

const ROLLOUT_FIELDS = 'plan fromVersion toVersion status startedAt endsAt limits { limit shadowId wouldDeny }';

/** Every stored plan's latest rollout, in one request (an alias and a variable per plan). */
async function loadRollouts(): Promise<Rollout[]> {
  const { plans } = await gql<{ plans: { id: string }[] }>('/admin/graphql', '{ plans { id } }');
  if (plans.length === 0) return [];
  const variables = Object.fromEntries(plans.map((plan, i) => [`p${i}`, plan.id]));
  const declared = plans.map((_, i) => `$p${i}: String!`).join(', ');
  const fields = plans.map((_, i) => `r${i}: rollout(plan: $p${i}) { ${ROLLOUT_FIELDS} }`).join(' ');
  const data = await gql<Record<string, Rollout | null>>('/admin/graphql', `query(${declared}) { ${fields} }`, variables);
  return Object.values(data).filter((rollout): rollout is Rollout => rollout !== null && rollout.status === 'running');
}

export function RolloutsSection() {
  const polled = usePolled(loadRollouts, []);
  const rollouts = polled.data ?? [];
  return (
    <Section title="Shadow rollouts in progress" id="rollouts" polled={polled}>
      {rollouts.length === 0 ? (
        <Empty>No rollout in progress (tollgate plans rollout start runs a new version in shadow).</Empty>
      ) : (
        <div class="scroll">
          <table>
            <thead>
              <tr>
                <th scope="col">Plan</th>
                <th scope="col">Versions</th>
                <th scope="col">Runs</th>
                <th scope="col">Limit</th>
                <th scope="col">Would deny</th>
              </tr>
            </thead>
            <tbody>
              {rollouts.flatMap((rollout) =>
                (rollout.limits.length === 0 ? [undefined] : rollout.limits).map((limit) => (
                  <tr data-testid="rollout-row" data-plan={rollout.plan} data-limit={limit?.limit ?? ''}>
                    <td>{rollout.plan}</td>
                    <td>
                      v{rollout.fromVersion} → v{rollout.toVersion}
                    </td>
                    <td>
                      {fmtTime(rollout.startedAt)} → {fmtTime(rollout.endsAt)}
                    </td>
                    <td>{limit?.limit ?? '—'}</td>
                    <td data-field="would-deny">{limit === undefined ? '—' : fmtUnits(limit.wouldDeny)}</td>
                  </tr>
                )),
              )}
            </tbody>
          </table>
        </div>
      )}
    </Section>
  );
}
