/**
 * `replay` agrees with the real decider (issue 17): traffic sent to the API process as `npm start`
 * runs it (concurrent bursts against a token bucket that denies some, a monthly quota whose thresholds
 * warn, settled requests that refund), metered into the ledger by a worker process, then replayed from
 * the ledger against the plan it ran under, reproduces the recorded decisions exactly: every admitted
 * request admitted, warned exactly when it was, with the same remaining on every limit. The
 * `tollgate replay` command reports the same totals, and what a tighter plan would have denied.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replayUsage } from '../../src/billing/index.js';
import type { LimitSpec } from '../../src/decider/index.js';
import { DynamoLedgerStore, DynamoUsageReader, createDynamoClient } from '../../src/metering/index.js';
import { parseLimitId, parseTenantId } from '../../src/shared/index.js';
import { allocateShards, tenantInShards } from '../support/allocate.js';
import { storeTenantPlan, type ApiServer } from '../support/api-server.js';
import { startMeteredApi, type MeteredApi } from '../support/metered-api.js';
import { waitFor } from '../support/poll.js';
import { stackEnv, testStack } from '../support/stack.js';
import { MONTH, monthStartMs, sleep } from '../support/time.js';

const run = promisify(execFile);
const stack = testStack();
const shards = allocateShards(1);
const taskQueue = `usage-replay-${shards.first}`;
const scratch = mkdtempSync(join(tmpdir(), 'usage-replay-'));
const dynamo = createDynamoClient({ endpoint: stack.dynamodbEndpoint, region: stack.dynamodbRegion });
/** 7 units, nothing refunded. */
const COST_7 = '{ products(first: 6) { nodes { id } } }';
/** 101 reserved, 7 charged. */
const SETTLED = '{ products(first: 50, category: "c-rare") { edges { node { name } } } }';
const limits = (monthly: number): LimitSpec[] => [
  {
    id: parseLimitId('burst'),
    scope: 'tenant',
    mode: 'hard',
    onDeciderDown: 'closed',
    algorithm: { kind: 'token-bucket', capacity: 140, refillAmount: 7, refillPeriodMs: 100 },
  },
  {
    id: parseLimitId('monthly'),
    scope: 'tenant',
    mode: 'hard',
    onDeciderDown: 'closed',
    algorithm: { kind: 'period-quota', limit: monthly, period: MONTH, thresholdsPercent: [5, 10, 25] },
  },
  {
    id: parseLimitId('per-key'),
    scope: 'apiKey',
    mode: 'hard',
    onDeciderDown: 'closed',
    algorithm: { kind: 'sliding-window', limit: 5_000, windowMs: 60_000 },
  },
];

let api: ApiServer;
let metered: MeteredApi | undefined;
let tenant = '';
let key = '';

interface Sent {
  status: number;
  receipt: string | null;
  remaining: Record<string, number>;
  isWarned: boolean;
  isSettled: boolean;
}

async function send(query: string): Promise<Sent> {
  for (let attempt = 1; ; attempt += 1) {
    const reply = await fetch(`${api.baseUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ query }),
    });
    const body = (await reply.json()) as {
      extensions?: { cost?: { receipt: string | null; limits: { id: string; remaining: number }[] }; quota?: unknown };
    };
    // shed by admission control on a loaded machine (never decided): retried as a client would
    if (reply.status === 503 && attempt < 10) {
      await sleep(1_000);
      continue;
    }
    const cost = body.extensions?.cost;
    return {
      status: reply.status,
      receipt: cost?.receipt ?? null,
      remaining: Object.fromEntries((cost?.limits ?? []).map((limit) => [limit.id, limit.remaining])),
      isWarned: body.extensions?.quota !== undefined,
      isSettled: query === SETTLED,
    };
  }
}

beforeAll(async () => {
  tenant = tenantInShards(shards, 'rp');
  key = (await storeTenantPlan(limits(3_000), { tenant })).key;
  metered = await startMeteredApi({ scratch, shard: shards.first, taskQueue });
  api = metered.api;
}, 180_000);

afterAll(async () => {
  await metered?.stop();
  dynamo.destroy();
  rmSync(scratch, { recursive: true, force: true });
});

describe('replay', () => {
  it('reproduces the real decider exactly on recorded traffic under the plan it ran under; the CLI reports a tighter plan', async () => {
    const fromMs = Date.now() - 60_000;
    // given bursts the token bucket partly denies, settled requests among them, and thresholds crossed
    const sent: Sent[] = [];
    for (let round = 0; round < 4; round += 1) {
      sent.push(...(await Promise.all([...Array.from({ length: 24 }, () => send(COST_7)), send(SETTLED), send(SETTLED)])));
      await sleep(700);
    }
    const admitted = sent.filter((reply) => reply.status === 200);
    expect(sent.filter((reply) => reply.status === 429).length).toBeGreaterThan(0);
    expect(admitted.filter((reply) => reply.isWarned).length).toBeGreaterThan(0);
    // when the ledger holds it all: every admitted request's entry, and the settlement of each refunded one (a request
    // answered 503 on a loaded machine after Redis decided it has its entry too: it counted in the decider's state)
    const reader = new DynamoUsageReader(dynamo, { tablePrefix: stack.tablePrefix });
    const periodStart = new Date(monthStartMs(Date.now())).toISOString();
    const expected = [
      ...admitted.map((reply) => reply.receipt as string),
      ...admitted.filter((reply) => reply.isSettled).map((reply) => `${reply.receipt}.settled`),
    ];
    const entries = await waitFor(
      'the ledger to hold the traffic',
      async () => {
        const read = await reader.entriesBetween({
          tenant: parseTenantId(tenant),
          periodStarts: [periodStart],
          fromMs,
          toMs: Date.now() + 60_000,
        });
        const ids = new Set(read.map((entry) => entry.eventId));
        return expected.every((id) => ids.has(id)) ? read : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 1_000 },
    );
    const unanswered = entries.filter((entry) => entry.kind === 'usage.reserved.v1').length - admitted.length;
    expect(unanswered).toBeGreaterThanOrEqual(0);
    // then the replay against the same plan admits every one, warns exactly those warned, with the same remaining
    const result = replayUsage({ tenant: parseTenantId(tenant), limits: limits(3_000), billingPeriod: MONTH, entries });
    const byId = new Map(result.requests.map((request) => [request.requestId, request]));
    for (const reply of admitted) {
      const replayed = byId.get(reply.receipt as string);
      expect(replayed?.kind).toBe(reply.isWarned ? 'warned' : 'allowed');
      // a settled request reports its limits after the refund; the others exactly the decision's
      if (!reply.isSettled) expect(replayed?.remaining).toEqual(reply.remaining);
    }
    expect(result.totals).toMatchObject({ requests: admitted.length + unanswered, denied: 0, deferred: 0 });
    expect(result.totals.replayedUnits).toBe(result.totals.recordedUnits);
    const balance = await new DynamoLedgerStore(dynamo, { tablePrefix: stack.tablePrefix }).getBalance({
      tenant: parseTenantId(tenant),
      periodStart,
    });
    expect(result.totals.recordedUnits).toBe(balance.amount);

    // and the CLI, as an operator runs it, says the same; a plan of 200 monthly units would have denied and billed less
    const cli = async (plan: LimitSpec[], extra: string[] = [], onTerminal = false): Promise<{ stdout: string; stderr: string }> => {
      const file = join(scratch, `plan-${plan[1]?.algorithm.kind === 'period-quota' ? plan[1].algorithm.limit : 0}.json`);
      writeFileSync(
        file,
        JSON.stringify({ id: `p-${tenant}`, version: 2, limits: plan, billingPeriod: MONTH, maxCostPerOperation: 10_000 }),
      );
      const args = [
        '--tenant',
        tenant,
        '--plan',
        file,
        '--from',
        new Date(fromMs).toISOString(),
        '--to',
        new Date(Date.now() + 60_000).toISOString(),
      ];
      const command = [process.execPath, 'bin/tollgate.mjs', 'replay', ...args, ...extra];
      const env = { ...process.env, ...stackEnv() };
      // on a terminal: run under script(1), which gives the command a pseudo-terminal (stdout and stderr both land in it)
      if (onTerminal) return run('script', ['-qec', command.map((part) => `'${part}'`).join(' '), '/dev/null'], { env });
      return run(command[0] as string, command.slice(1), { env });
    };
    const sameRun = await cli(limits(3_000), ['--json']);
    const same = JSON.parse(sameRun.stdout) as { totals: Record<string, number> };
    expect(same.totals).toEqual(result.totals);
    // a progress bar on a terminal only, never with --json nor on a pipe
    expect(sameRun.stderr).toBe('');
    const onTerminal = await cli(limits(3_000), [], true);
    expect(onTerminal.stdout).toContain(`${entries.length}/${entries.length} entries replayed`);
    expect(onTerminal.stdout).toContain('billing periods read');
    expect(onTerminal.stdout).toContain(`requests ${result.totals.requests}`);
    const jsonOnTerminal = await cli(limits(3_000), ['--json'], true);
    expect(jsonOnTerminal.stdout).not.toContain('entries replayed');
    const tight = JSON.parse((await cli(limits(200), ['--json'])).stdout) as {
      totals: Record<string, number>;
      days: { limits: Record<string, { denied: number }> }[];
    };
    expect(tight.totals['denied']).toBeGreaterThan(0);
    expect(tight.days.reduce((sum, day) => sum + (day.limits['monthly']?.denied ?? 0), 0)).toBe(tight.totals['denied']);
    expect(tight.totals['replayedUnits']).toBeLessThanOrEqual(200);
    expect(tight.totals['replayedUnits']).toBeLessThan(tight.totals['recordedUnits']!);
    const piped = await cli(limits(200));
    expect(piped.stdout).toContain(`denied ${tight.totals['denied']}`);
    expect(piped.stderr).toBe('');
    // bad input: exit 2 with the problem named
    const bad = await run(process.execPath, ['bin/tollgate.mjs', 'replay', '--tenant', tenant, '--from', 'yesterday'], {
      env: { ...process.env, ...stackEnv() },
    }).catch((error: unknown) => error as { code: number; stderr: string });
    expect(bad).toMatchObject({ code: 2 });
    expect((bad as { stderr: string }).stderr).toContain('--plan is required');
    expect((bad as { stderr: string }).stderr).toContain('--from "yesterday" is not an ISO-8601 instant');
    // six CLI processes, each a tsx start: well over a minute on a busy 2-core machine
  }, 240_000);
});
