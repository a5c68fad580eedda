/**
 * `waitForReplicas`: the decider WAITs for a replica after each script call,
 * on the same connection, and reports how many acknowledged. A replica that
 * stops answering bounds the wait by its timeout and never changes the decision.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startRedis, stopProcess, type ManagedProcess } from '../../infra/services.js';
import {
  RedisDecider,
  connectDeciderRedis,
  shardOf,
  usageStreamKey,
  type DecideInput,
  type Decision,
  type DeciderRedis,
  type LimitSpec,
} from '../../src/decider/index.js';
import { parseLimitId, parseTenantId, systemClock } from '../../src/shared/index.js';
import { waitFor } from '../support/poll.js';
import { closeAll } from '../support/teardown.js';
import { uniqueTenant } from '../support/stack.js';
import { MONTH } from '../support/time.js';
import { streamEvents } from '../support/usage-stream.js';
import { decideRequest } from '../support/decide-input.js';

const SHARDS = 16;
const scratch = mkdtempSync(join(tmpdir(), 'tollgate-durability-'));
let primary: ManagedProcess;
let replica: ManagedProcess;
let client: DeciderRedis;
/** A client whose command timeout (60 s) is far above any wait here: only WAIT's own timeout can end a wait. */
let patient: DeciderRedis;
let replicaAdmin: Redis;

beforeAll(async () => {
  const [primaryPort, replicaPort] = [await freePort(), await freePort()];
  primary = await startRedis({ dataDir: scratch, port: primaryPort, name: 'primary' });
  replica = await startRedis({
    dataDir: scratch,
    port: replicaPort,
    name: 'replica',
    extraArgs: ['--replicaof', '127.0.0.1', String(primaryPort)],
  });
  replicaAdmin = new Redis({ port: replicaPort });
  await waitFor('the replica to sync', async () => (await replicaAdmin.info('replication')).includes('master_link_status:up'), {
    timeoutMs: 20_000,
    intervalMs: 50,
  });
  client = await connectDeciderRedis({ url: `redis://127.0.0.1:${primaryPort}`, commandTimeoutMs: 2_000 });
  patient = await connectDeciderRedis({ url: `redis://127.0.0.1:${primaryPort}`, commandTimeoutMs: 60_000 });
}, 60_000);

afterAll(async () => {
  await closeAll(client, patient, replicaAdmin);
  await Promise.all([stopProcess(replica), stopProcess(primary)]);
  rmSync(scratch, { recursive: true, force: true });
});

const limits: LimitSpec[] = [
  {
    id: parseLimitId('month'),
    scope: 'tenant',
    algorithm: { kind: 'period-quota', limit: 1_000, period: MONTH, thresholdsPercent: [] },
    mode: 'hard',
    onDeciderDown: 'open',
  },
];

function request(tenant: string): DecideInput {
  return decideRequest({ tenant, limits, cost: 5 });
}

describe('waitForReplicas', () => {
  it('reports the replica that acknowledged, and the replica holds the usage event', async () => {
    const decider = new RedisDecider(client, {
      shardCount: SHARDS,
      clock: systemClock,
      waitForReplicas: { replicas: 1, timeoutMs: 1_000 },
    });
    const tenant = uniqueTenant('dur');
    const decisions = await Promise.all(Array.from({ length: 20 }, () => decider.decide(request(tenant))));
    expect(decisions.every((decision) => decision.kind === 'allowed' && decision.replicasAcked === 1)).toBe(true);
    // acknowledged means already on the replica: read it there, right away
    const streamIds = decisions.map((decision) => (decision.kind === 'allowed' ? decision.streamId : ''));
    const onReplica = await replicaAdmin.keys('{s:*}:usage:v1');
    const entries = (await Promise.all(onReplica.map((key) => replicaAdmin.xrange(key, '-', '+')))).flat();
    expect(streamIds.every((id) => entries.some(([entryId]) => entryId === id))).toBe(true);
  });

  it('a paused replica costs at most the wait timeout and never changes the decision', async () => {
    // given a decider that waits 150 ms for one replica, on a client whose command timeout cannot end the wait first,
    // and the replica paused
    const timeoutMs = 150;
    const decider = new RedisDecider(patient, { shardCount: SHARDS, clock: systemClock, waitForReplicas: { replicas: 1, timeoutMs } });
    const tenant = uniqueTenant('dur');
    process.kill(replica.pid, 'SIGSTOP');
    let isResumed = false;
    const resume = (): void => {
      if (isResumed) return;
      isResumed = true;
      process.kill(replica.pid, 'SIGCONT');
    };
    // (a wait its timeout did not end would end only when the replica acknowledges: the replica comes back after
    // 40 × the timeout, and a decision still waiting then would report its acknowledgement)
    const backstop = setTimeout(resume, 40 * timeoutMs);
    let decision: Decision | undefined;
    let wasPausedThroughout: boolean;
    try {
      // when it decides
      decision = await decider.decide(request(tenant));
      wasPausedThroughout = !isResumed;
    } finally {
      clearTimeout(backstop);
      resume();
    }
    // then the wait ended by its timeout, with no replica acknowledged, while the replica was still paused
    expect(wasPausedThroughout).toBe(true);
    expect(decision).toMatchObject({ kind: 'allowed', replicasAcked: 0 });
    // and the decision stands: its usage event is on the primary
    const streamId = decision?.kind === 'allowed' ? decision.streamId : 'none';
    const [entry] = streamEvents(await client.xrange(usageStreamKey(shardOf(parseTenantId(tenant), SHARDS)), streamId, streamId));
    expect(entry?.[1]).toContain(tenant);
  });

  it('reports nothing when not asked to wait', async () => {
    const decider = new RedisDecider(client, { shardCount: SHARDS, clock: systemClock });
    const decision = await decider.decide(request(uniqueTenant('dur')));
    expect(decision.kind).toBe('allowed');
    expect(decision).not.toHaveProperty('replicasAcked');
  });
});
