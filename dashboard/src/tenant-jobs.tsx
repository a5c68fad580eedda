/** The tenant's deferred (202) jobs, newest first, a page at a time (usage `jobs`): status, times, costs and the result's start. */
import { useState } from 'preact/hooks';
import { gql } from './api.js';
import { usePolled } from './poll.js';
import { Empty, Section, fmtTime, fmtUnits } from './ui.js';

interface Job {
  id: string;
  status: string;
  operationName: string | null;
  requestedCost: number;
  actualCost: number | null;
  errorCode: string | null;
  createdAt: string;
  finishedAt: string | null;
  resultSummary: string | null;
  resultChars: number | null;
  resultPath: string;
}

const PAGE = 10;

const STATUS_BADGE: Record<string, string> = { succeeded: 'idle', running: 'amber', queued: 'amber', failed: 'red', expired: 'red' };

export function Jobs() {
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const after = cursors.at(-1) ?? null;
  const polled = usePolled(
    () =>
      gql<{ jobs: { items: Job[]; cursor: string | null } }>(
        '/usage/graphql',
        `query($n: Int, $after: String) { jobs(first: $n, after: $after) { items { id status operationName requestedCost actualCost errorCode
          createdAt finishedAt resultSummary resultChars resultPath } cursor } }`,
        { n: PAGE, after },
      ).then((data) => data.jobs),
    [after],
  );
  const page = polled.data;
  return (
    <Section title="Deferred jobs" id="jobs" polled={polled}>
      {page === undefined || page.items.length === 0 ? (
        <Empty>
          No deferred job{cursors.length > 1 ? ' on this page' : ' yet (a request over a deferrable limit is answered 202 with a job)'}.
        </Empty>
      ) : (
        <div class="scroll">
          <table class="wide">
            <thead>
              <tr>
                <th scope="col">Created</th>
                <th scope="col">Operation</th>
                <th scope="col">Status</th>
                <th scope="col">Cost</th>
                <th scope="col">Finished</th>
                <th scope="col">Result</th>
              </tr>
            </thead>
            <tbody>
              {page.items.map((job) => (
                <tr data-testid="job-row" data-job={job.id}>
                  <td>{fmtTime(job.createdAt)}</td>
                  <td>{job.operationName ?? '—'}</td>
                  <td>
                    <span class={`badge ${STATUS_BADGE[job.status] ?? 'idle'}`} data-field="status">
                      {job.status}
                    </span>
                  </td>
                  <td data-field="cost">
                    {fmtUnits(job.actualCost ?? job.requestedCost)}
                    {job.actualCost === null ? ' reserved' : ''}
                  </td>
                  <td>{job.finishedAt === null ? '—' : fmtTime(job.finishedAt)}</td>
                  <td>
                    {job.errorCode !== null ? (
                      <span class="text-red">{job.errorCode}</span>
                    ) : job.resultSummary === null ? (
                      '—'
                    ) : (
                      <div class="clip" data-field="result">
                        {job.resultSummary}
                        {(job.resultChars ?? 0) > job.resultSummary.length ? '…' : ''}
                      </div>
                    )}
                    <p class="muted small">GET {job.resultPath} with the API key</p>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <p class="pager">
        <button type="button" disabled={cursors.length === 1} onClick={() => setCursors(cursors.slice(0, -1))}>
          Newer
        </button>
        <button
          type="button"
          disabled={page?.cursor === null || page === undefined}
          onClick={() => page?.cursor !== undefined && page.cursor !== null && setCursors([...cursors, page.cursor])}
        >
          Older
        </button>
      </p>
    </Section>
  );
}
