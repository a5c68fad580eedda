/**
 * The API entry point with deferred jobs wired in: `src/graphql/server.ts`
 * started as a process against the test stack polls the jobs task queue,
 * serves `GET /jobs/<id>` and the `job(id)` field for the caller's tenant,
 * and exits 0 on SIGTERM.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../infra/services.js';
import { waitFor } from '../support/poll.js';
import { stackEnv } from '../support/stack.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'tollgate-jobs-server-'));
let child: ChildProcessByStdio<null, Readable, Readable> | undefined;

afterAll(() => {
  if (child !== undefined && child.exitCode === null) child.kill('SIGKILL');
  rmSync(scratch, { recursive: true, force: true });
});

describe('the API process with deferred jobs', () => {
  it("polls the jobs queue, serves job status to the key's tenant, and stops cleanly on SIGTERM", async () => {
    // given the API started against the test stack
    const port = await freePort();
    const keysFile = join(scratch, 'keys.json');
    child = spawn(process.execPath, ['--import', 'tsx', 'src/graphql/server.ts'], {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env['PATH'] ?? '',
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        ...stackEnv(),
        API_PORT: String(port),
        API_DEMO_KEYS_FILE: keysFile,
        DECIDER_SPOOL_PATH: join(scratch, 'spool'),
        JOBS_TASK_QUEUE: `jobs-server-${port}`,
        API_JOB_STATUS_PER_SECOND: '2',
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolveExit) => child?.on('exit', resolveExit));
    await waitFor(
      'the API to listen with the jobs worker polling',
      () => stdout.includes('jobs worker polling') && stdout.includes('api listening'),
    );
    const keys = JSON.parse(readFileSync(keysFile, 'utf8')) as { tenant: string; key: string }[];
    const acme = keys.find((entry) => entry.tenant === 'acme')?.key ?? '';
    const base = `http://127.0.0.1:${port}`;
    const unknownJob = `j-${'0'.repeat(32)}`;
    // when it is asked for a job
    const rest = await fetch(`${base}/jobs/${unknownJob}`, { headers: { authorization: `Bearer ${acme}` } });
    const anonymous = await fetch(`${base}/jobs/${unknownJob}`);
    const graphql = await fetch(`${base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${acme}` },
      body: JSON.stringify({ query: 'query J($id: ID!) { job(id: $id) { id status } }', variables: { id: unknownJob } }),
    });
    // then the job store answers (no such job for this tenant), and a key is required
    expect(rest.status).toBe(404);
    expect(await rest.json()).toEqual({ error: { code: 'JOB_NOT_FOUND', message: 'no such job' } });
    expect(anonymous.status).toBe(401);
    expect(graphql.status).toBe(200);
    expect(await graphql.json()).toMatchObject({ data: { job: null } });
    // and rapid status polls with one key are limited (2/s, burst 4: one was taken above), another tenant's key is not
    const polls = await Promise.all(
      Array.from({ length: 10 }, async () => fetch(`${base}/jobs/${unknownJob}`, { headers: { authorization: `Bearer ${acme}` } })),
    );
    const refused = polls.filter((response) => response.status === 429);
    // at most the 3 tokens left plus what refills while they are sent (a second: 2 more, on a slow machine)
    expect(refused.length).toBeGreaterThanOrEqual(5);
    expect(refused.length + polls.filter((response) => response.status === 404).length).toBe(10);
    expect(Number(refused[0]?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await refused[0]?.json()).toMatchObject({ error: { code: 'RATE_LIMITED' } });
    const other = keys.find((entry) => entry.tenant !== 'acme')?.key ?? '';
    expect((await fetch(`${base}/jobs/${unknownJob}`, { headers: { authorization: `Bearer ${other}` } })).status).toBe(404);
    // and /metrics carries the metering gauges (stream and ledger lag read from Redis on scrape, the audit's drift)
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/^tollgate_usage_stream_unacknowledged_entries \d+$/m);
    expect(metrics).toMatch(/^tollgate_ledger_lag_seconds \d+$/m);
    expect(metrics).toContain('# TYPE tollgate_audit_drift_units gauge');
    // and SIGTERM stops it with exit code 0
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
