/**
 * The start policies of the long-lived workflows, asserted on the Temporal dev
 * server: `meter/<first>-<last>` is started and `account/<tenant>` signal-with-started
 * with USE_EXISTING (a second start joins the running run, never a second run
 * beside it; the pump's gets no signal unless its settings changed) and ALLOW_DUPLICATE (one that ended, e.g. terminated by an operator, is
 * started again by the next ensure, as a new run). The workflows run on a task
 * queue nobody polls: only the runs and their signals are looked at.
 * (`audit/<scope>`: metering-audit-workflow.test.ts; `job/…`: jobs.test.ts.)
 * Its shard (a meter/<shard> id) comes from the test allocator.
 */
import { randomBytes } from 'node:crypto';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  accountTimings,
  accountWorkflowId,
  ensureAccountWorkflow,
  ensureMeterWorkflows,
  meterPumpId,
  meterWorkflowId,
} from '../../src/workflows/index.js';
import { closeAll } from '../support/teardown.js';
import { waitFor } from '../support/poll.js';
import { allocateShards } from '../support/allocate.js';
import { testConfig, uniqueTenant } from '../support/stack.js';

const config = testConfig();
const taskQueue = `policies-nobody-${randomBytes(4).toString('hex')}`;
let connection: Connection;
let client: Client;
const started: string[] = [];

beforeAll(async () => {
  connection = await Connection.connect({ address: config.temporal.address });
  client = new Client({ connection, namespace: config.temporal.namespace });
});

afterAll(async () => {
  for (const id of started)
    await client.workflow
      .getHandle(id)
      .terminate('test over')
      .catch(() => undefined);
  await closeAll(connection);
});

async function runs(workflowId: string): Promise<{ runId: string; status: string }[]> {
  const found: { runId: string; status: string }[] = [];
  for await (const run of client.workflow.list({ query: `WorkflowId = '${workflowId}'` }))
    found.push({ runId: run.runId, status: run.status.name });
  return found;
}

async function signalCount(handle: WorkflowHandle, name: string): Promise<number> {
  const history = await handle.fetchHistory();
  return (history.events ?? []).filter((event) => event.workflowExecutionSignaledEventAttributes?.signalName === name).length;
}

/** Ensures twice, terminates, ensures again; returns what each step saw. */
async function exercise(workflowId: string, ensure: () => Promise<unknown>, signalName: string) {
  started.push(workflowId);
  await ensure();
  const first = await client.workflow.getHandle(workflowId).describe();
  await ensure();
  const joined = await client.workflow.getHandle(workflowId).describe();
  const signalsInFirst = await signalCount(client.workflow.getHandle(workflowId, first.runId), signalName);
  await client.workflow.getHandle(workflowId).terminate('operator stop');
  await ensure();
  const restarted = await client.workflow.getHandle(workflowId).describe();
  // visibility is eventually consistent: wait until both runs are listed
  const listed = await waitFor(
    'both runs to be listed',
    async () => {
      const found = await runs(workflowId);
      return found.length >= 2 && found;
    },
    { timeoutMs: 10_000, intervalMs: 200 },
  );
  return { first, joined, signalsInFirst, restarted, listed };
}

describe('start policies of the long-lived workflows', () => {
  it('meter/<shard>: a second ensure joins the running pump (one run, no signal: nothing written into it); after a terminate the next ensure starts a new run', async () => {
    const shard = allocateShards(1).first;
    const settings = { idleDelayMs: 200, iterationsPerRun: 10, activityTimeoutMs: 30_000, heartbeatTimeoutMs: 2_000 };
    const seen = await exercise(
      meterPumpId(shard),
      () => ensureMeterWorkflows(client, { shards: [shard], taskQueue, settings }),
      'meterSettings',
    );
    expect(seen.joined.runId).toBe(seen.first.runId);
    expect(seen.signalsInFirst).toBe(0);
    expect(seen.restarted.runId).not.toBe(seen.first.runId);
    expect(seen.restarted.status.name).toBe('RUNNING');
    expect(seen.listed.map((run) => run.status).sort()).toEqual(['RUNNING', 'TERMINATED']);
  });

  it('meter/<shard>: an ensure with different settings signals the running pump once; the same settings again signal nothing', async () => {
    // given a running pump (on a queue nobody polls)
    const shard = allocateShards(1).first;
    const workflowId = meterPumpId(shard);
    started.push(workflowId);
    const settings = { idleDelayMs: 200, iterationsPerRun: 10, activityTimeoutMs: 30_000, heartbeatTimeoutMs: 2_000 };
    const first = await ensureMeterWorkflows(client, { shards: [shard], taskQueue, settings });
    // when ensured with changed settings, twice
    const changed = { ...settings, idleDelayMs: 300 };
    const second = await ensureMeterWorkflows(client, { shards: [shard], taskQueue, settings: changed });
    // then only the first of them signals (the run never started, so its input still holds the old settings: a third
    // ensure with the changed settings signals again; with the original ones it does not)
    const third = await ensureMeterWorkflows(client, { shards: [shard], taskQueue, settings });
    expect([first.signalled, second.signalled, third.signalled]).toEqual([0, 1, 0]);
    expect(await signalCount(client.workflow.getHandle(workflowId), 'meterSettings')).toBe(1);
  });

  it('meter/<first>-<last>: an ensure with 4 shards per pump retires the older pumps of its shards (a meterShard, one-shard pumps) and no other', async () => {
    // given, for four aligned shards, a `meter/<shard>` of an older worker and one-shard pumps of two others, and a pump
    // of a shard outside them (all on a queue nobody polls)
    const range = allocateShards(8);
    const first = Math.ceil(range.first / 4) * 4;
    const shards = [first, first + 1, first + 2, first + 3];
    const outside = first + 4 < range.end ? first + 4 : range.first;
    const settings = { idleDelayMs: 200, iterationsPerRun: 10, activityTimeoutMs: 30_000, heartbeatTimeoutMs: 2_000 };
    await client.workflow.start('meterShard', {
      taskQueue,
      workflowId: meterWorkflowId(first),
      args: [{ shard: first, settings }],
    });
    await ensureMeterWorkflows(client, { shards: [first + 2, first + 3, outside], taskQueue, settings });
    const older = [meterWorkflowId(first), meterPumpId(first + 2), meterPumpId(first + 3)];
    started.push(...older, meterPumpId(outside), meterPumpId(first, first + 3));
    await waitFor('the older pumps to be listed', async () => {
      const listed = await client.workflow.count(`WorkflowId IN ('${older.join("', '")}') AND ExecutionStatus = 'Running'`);
      return listed.count === older.length;
    });
    // when the four shards are ensured with 4 shards per pump
    const ensured = await ensureMeterWorkflows(client, { shards, shardsPerPump: 4, taskQueue, settings });
    // then one pump owns them, the three older ones are terminated, the one outside runs on
    expect(ensured.retired).toBe(3);
    expect((await client.workflow.getHandle(meterPumpId(first, first + 3)).describe()).status.name).toBe('RUNNING');
    for (const id of older) expect((await client.workflow.getHandle(id).describe()).status.name, id).toBe('TERMINATED');
    expect((await client.workflow.getHandle(meterPumpId(outside)).describe()).status.name).toBe('RUNNING');
    // and an ensure again retires nothing more
    expect((await ensureMeterWorkflows(client, { shards, shardsPerPump: 4, taskQueue, settings })).retired).toBe(0);
  });

  it('account/<tenant>: a second ensure joins the running account (one run, two signals); after a terminate the next ensure starts a new run', async () => {
    const tenant = uniqueTenant('p');
    const timings = accountTimings(config);
    const seen = await exercise(
      accountWorkflowId(tenant),
      () => ensureAccountWorkflow(client, { tenant, taskQueue, timings }),
      'accountWarnings',
    );
    expect(seen.joined.runId).toBe(seen.first.runId);
    expect(seen.signalsInFirst).toBe(2);
    expect(seen.restarted.runId).not.toBe(seen.first.runId);
    expect(seen.restarted.status.name).toBe('RUNNING');
    expect(seen.listed.map((run) => run.status).sort()).toEqual(['RUNNING', 'TERMINATED']);
  });
});
