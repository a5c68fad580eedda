import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InstanceRegistry } from '../../../src/decider/instances.js';
import { createDeciderRedis, type DeciderRedis } from '../../../src/decider/redis.js';
import { ResilientDecider } from '../../../src/decider/resilient.js';
import { FileSpool } from '../../../src/decider/spool.js';
import type { DecideInput, LimitSpec } from '../../../src/decider/ports.js';
import { MONTH } from '../../support/time.js';
import { createLogger, parseEventId, parseKeyId, parseLimitId, parseTenantId } from '../../../src/shared/index.js';

const dir = mkdtempSync(join(tmpdir(), 'tollgate-backstop-'));
const logger = createLogger({ level: 'silent', name: 'test' });
// never connected: every decision here is made with the breaker open, no Redis call is sent
const redis: DeciderRedis = createDeciderRedis({ url: 'redis://127.0.0.1:9', commandTimeoutMs: 100 });
redis.on('error', () => undefined);
afterAll(() => {
  redis.disconnect();
  rmSync(dir, { recursive: true, force: true });
});

const clock = { now: 1_800_000_000_000, nowMs: () => clock.now };
let sequence = 0;

function request(onDeciderDown: LimitSpec['onDeciderDown'], capacity: number, cost = 1): DecideInput {
  sequence += 1;
  return {
    tenant: parseTenantId('acme'),
    keyId: parseKeyId('k1'),
    requestId: parseEventId(`r-${sequence}`),
    operation: 'op',
    cost,
    limits: [
      {
        id: parseLimitId('burst'),
        scope: 'tenant',
        algorithm: { kind: 'token-bucket', capacity, refillAmount: 3, refillPeriodMs: 1_000 },
        mode: 'hard',
        onDeciderDown,
      },
    ],
    billingPeriod: MONTH,
    policyVersion: 1,
  };
}

function openDecider(name: string, instances: number): { decider: ResilientDecider; spool: FileSpool } {
  const spool = new FileSpool(join(dir, name, 'decider.spool'));
  const decider = new ResilientDecider(redis, {
    shardCount: 16,
    clock,
    logger,
    spool,
    // opened below and never probing: the backstop decides every request
    breaker: { cooldownMs: 3_600_000_000 },
    backstop: { instances: () => instances },
  });
  for (let i = 0; i < 5; i += 1) decider.breaker.failure();
  return { decider, spool };
}

async function admittedOf(decider: ResilientDecider, count: number, capacity: number): Promise<number> {
  let admitted = 0;
  for (let i = 0; i < count; i += 1) {
    const decision = await decider.decide(request('local', capacity));
    if (decision.kind === 'degraded' && decision.isAdmitted) admitted += 1;
  }
  return admitted;
}

describe('the local backstop', () => {
  it('divides a token bucket by the instances, its capacity and its refill rate alike', async () => {
    const { decider: alone } = openDecider('alone', 1);
    const { decider: third } = openDecider('third', 3);
    expect(await admittedOf(alone, 40, 30)).toBe(30);
    expect(await admittedOf(third, 40, 30)).toBe(10);
    // 3 s later the whole bucket refilled 9 units; a third of the instances' share is 3
    clock.now += 3_000;
    expect(await admittedOf(alone, 40, 30)).toBe(9);
    expect(await admittedOf(third, 40, 30)).toBe(3);
  });
});

describe('a spool that cannot be written', () => {
  it('admits per policy but counts the lost units and says the spool is not writable', async () => {
    const { decider } = openDecider('gone', 1);
    rmSync(join(dir, 'gone'), { recursive: true, force: true });
    const decision = await decider.decide(request('open', 100, 7));
    expect(decision).toMatchObject({ kind: 'degraded', isAdmitted: true });
    expect(decider.spoolStats()).toMatchObject({ entries: 0, isWritable: false, lost: { entries: 1, units: 7 } });
  });
});

describe('InstanceRegistry', () => {
  it('divides by the floor until it read a count, by the count kept on disk after a restart, never below the floor', async () => {
    const fresh = new InstanceRegistry(redis, { deployment: 'api', heartbeatMs: 1_000, floor: 2, logger });
    await fresh.beat(); // Redis unreachable: nothing read
    expect(fresh.count()).toBe(2);
    const statePath = join(dir, 'instances');
    writeFileSync(statePath, '4\n');
    expect(new InstanceRegistry(redis, { deployment: 'api', heartbeatMs: 1_000, statePath, logger }).count()).toBe(4);
    expect(new InstanceRegistry(redis, { deployment: 'api', heartbeatMs: 1_000, statePath, floor: 6, logger }).count()).toBe(6);
    expect(() => new InstanceRegistry(redis, { deployment: 'Not Valid', heartbeatMs: 1_000, logger })).toThrow(/deployment/);
  });
});
