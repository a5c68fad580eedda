/** The operator view: tenants (paginated), audit drift, fleet figures, top consumers, plans and rollouts, the admin audit log (all from /admin/graphql). */
import { useState } from 'preact/hooks';
import { gql } from './api.js';
import { RolloutsSection, TopConsumersSection } from './operator-insights.js';
import { OperationsPanels } from './operations.js';
import { usePolled } from './poll.js';
import { Empty, Section, fmtTime, fmtUnits } from './ui.js';

interface Tenant {
  id: string;
  status: string;
  plan: string | null;
  createdAt: string;
}
interface AuditEntry {
  id: string;
  tokenId: string;
  action: string;
  target: string;
  after: string | null;
  at: string;
}
interface TenantAudit {
  tenant: string;
  periodStart: string;
  status: string;
  admitted: number | null;
  ledgered: number | null;
  inFlight: number | null;
  drift: number | null;
}

const PAGE = 25;

function Tenants() {
  const [status, setStatus] = useState<'' | 'active' | 'suspended'>('');
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [audit, setAudit] = useState<TenantAudit | string | undefined>(undefined);
  const after = cursors.at(-1) ?? null;
  const polled = usePolled(
    () =>
      gql<{ tenants: { items: Tenant[]; cursor: string | null } }>(
        '/admin/graphql',
        'query($status: TenantStatus, $first: Int, $after: String) { tenants(status: $status, first: $first, after: $after) { items { id status plan createdAt } cursor } }',
        { status: status === '' ? null : status, first: PAGE, after },
      ).then((data) => data.tenants),
    [status, after],
  );
  const check = async (tenant: string): Promise<void> => {
    setAudit(undefined);
    try {
      const data = await gql<{ audit: TenantAudit }>(
        '/admin/graphql',
        'query($t: String!) { audit(tenant: $t) { tenant periodStart status admitted ledgered inFlight drift } }',
        { t: tenant },
      );
      setAudit(data.audit);
    } catch (error) {
      setAudit(error instanceof Error ? error.message : String(error));
    }
  };
  const actions = (
    <label>
      Status{' '}
      <select
        value={status}
        onChange={(event) => {
          setStatus(event.currentTarget.value as '' | 'active' | 'suspended');
          setCursors([null]);
        }}
      >
        <option value="">all</option>
        <option value="active">active</option>
        <option value="suspended">suspended</option>
      </select>
    </label>
  );
  const page = polled.data;
  return (
    <Section title="Tenants" id="tenants" polled={polled} actions={actions}>
      {page === undefined || page.items.length === 0 ? (
        <Empty>No tenant yet.</Empty>
      ) : (
        <div class="scroll">
          <table>
            <thead>
              <tr>
                <th scope="col">Tenant</th>
                <th scope="col">Status</th>
                <th scope="col">Plan</th>
                <th scope="col">Since</th>
                <th scope="col">Ledger audit</th>
              </tr>
            </thead>
            <tbody>
              {page.items.map((tenant) => (
                <tr data-testid="tenant-row" data-tenant={tenant.id}>
                  <td>{tenant.id}</td>
                  <td>
                    <span class={`badge ${tenant.status === 'active' ? 'idle' : 'red'}`}>{tenant.status}</span>
                  </td>
                  <td>{tenant.plan ?? '—'}</td>
                  <td>{fmtTime(tenant.createdAt)}</td>
                  <td>
                    <button type="button" onClick={() => void check(tenant.id)}>
                      Audit
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <p class="pager">
        <button type="button" disabled={cursors.length === 1} onClick={() => setCursors(cursors.slice(0, -1))}>
          Previous
        </button>
        <button
          type="button"
          disabled={page?.cursor === null || page === undefined}
          onClick={() => page?.cursor !== undefined && page.cursor !== null && setCursors([...cursors, page.cursor])}
        >
          Next
        </button>
      </p>
      {audit === undefined ? null : typeof audit === 'string' ? (
        <p class="error" role="alert">
          {audit}
        </p>
      ) : (
        <p data-testid="tenant-audit">
          {audit.tenant}, period from {fmtTime(audit.periodStart)}: {audit.status}; admitted {fmtUnits(audit.admitted)}, ledgered{' '}
          {fmtUnits(audit.ledgered)}, in flight {fmtUnits(audit.inFlight)},{' '}
          <strong class={audit.drift === 0 ? '' : 'text-red'}>drift {fmtUnits(audit.drift)}</strong>
        </p>
      )}
    </Section>
  );
}

function Plans() {
  const polled = usePolled(
    () =>
      gql<{ plans: { id: string; version: number; problem: string | null; appliedAt: string | null }[] }>(
        '/admin/graphql',
        '{ plans { id version problem appliedAt } }',
      ).then((data) => data.plans),
    [],
    30_000,
  );
  const plans = polled.data ?? [];
  return (
    <Section title="Plans" id="plans" polled={polled}>
      {plans.length === 0 ? (
        <Empty>No plan stored.</Empty>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Plan</th>
              <th scope="col">Version</th>
              <th scope="col">Applied</th>
              <th scope="col">Problem</th>
            </tr>
          </thead>
          <tbody>
            {plans.map((plan) => (
              <tr data-testid="plan-row">
                <td>{plan.id}</td>
                <td>{plan.version}</td>
                <td>{plan.appliedAt === null ? '—' : fmtTime(plan.appliedAt)}</td>
                <td>{plan.problem ?? 'none'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  );
}

function AuditLog() {
  const polled = usePolled(
    () =>
      gql<{ auditLog: { items: AuditEntry[] } }>(
        '/admin/graphql',
        '{ auditLog(first: 25) { items { id tokenId action target after at } } }',
      ).then((data) => data.auditLog.items),
    [],
  );
  const items = polled.data ?? [];
  return (
    <Section title="Admin audit log" id="audit-log" polled={polled}>
      {items.length === 0 ? (
        <Empty>No admin change yet.</Empty>
      ) : (
        <div class="scroll">
          <table>
            <thead>
              <tr>
                <th scope="col">At</th>
                <th scope="col">Token</th>
                <th scope="col">Action</th>
                <th scope="col">Target</th>
                <th scope="col">After</th>
              </tr>
            </thead>
            <tbody>
              {items.map((entry) => (
                <tr data-testid="audit-row">
                  <td>{fmtTime(entry.at)}</td>
                  <td>{entry.tokenId}</td>
                  <td>{entry.action}</td>
                  <td>{entry.target}</td>
                  <td>
                    <div class="clip">{entry.after ?? '—'}</div>
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

export function OperatorView() {
  return (
    <>
      <Tenants />
      <OperationsPanels />
      <TopConsumersSection />
      <Plans />
      <RolloutsSection />
      <AuditLog />
    </>
  );
}
