/**
 * A busy process is not a sick Redis, at the wall-clock cap (DECIDER_MAX_WAIT_MS): the decider over a Redis of this
 * file's own behind a holding proxy (the command waits in the proxy, so no reply can be in the socket), and the
 * test's own event loop kept busy past the cap. The call's requests are shed (`OverloadedError`), not degraded, the
 * breaker hears nothing, and the void spooled for each is replayed once the command has run: Redis admitted the
 * request after all, and the void settles it at cost 0, so a shed request is never charged. The same wait spent idle
 * (Redis is the slow one) degrades as before and counts against the breaker. Both ways a cap is reached are covered:
 * the decider's own timer and the connection's command timeout (ioredis), which fires first when it is the shorter.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startRedis, stopProcess, type ManagedProcess } from '../../infra/services.js';
import {
  FileSpool,
  ResilientDecider,
  admittedKey,
  connectDeciderRedis,
  periodAt,
  shardOf,
  type DecideInput,
  type DeciderRedis,
  type LimitSpec,
} from '../../src/decider/index.js';
import { OverloadedError, createLogger, parseLimitId, parseTenantId, systemClock } from '../../src/shared/index.js';
import { startHoldingProxy, type HoldingProxy } from '../support/holding-proxy.js';
import { waitFor } from '../support/poll.js';
import { uniqueTenant } from '../support/stack.js';
import { MONTH } from '../support/time.js';
import { decideRequest } from '../support/decide-input.js';

const SHARDS = 16;
const CAPACITY = 100;
const COST = 7;
const scratch = mkdtempSync(join(tmpdir(), 'tollgate-busy-'));
let redisProc: ManagedProcess;
let proxy: HoldingProxy;
let admin: DeciderRedis;
const clients: DeciderRedis[] = [];

beforeAll(async () => {
  const port = await freePort();
  redisProc = await startRedis({ dataDir: scratch, port, appendfsync: 'everysec' });
  proxy = await startHoldingProxy({ host: '127.0.0.1', port });
  admin = await connectDeciderRedis({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 5_000 });
});

afterAll(async () => {
  for (const client of clients) client.disconnect();
  admin.disconnect();
  await proxy.close();
  await stopProcess(redisProc);
  rmSync(scratch, { recursive: true, force: true });
});

const LIMITS: LimitSpec[] = [
  {
    id: parseLimitId('busy'),
    scope: 'tenant',
    algorithm: { kind: 'token-bucket', capacity: CAPACITY, refillAmount: 1, refillPeriodMs: 3_600_000 },
    mode: 'hard',
    // a degraded decision would admit: the busy process must not get there
    onDeciderDown: 'open',
  },
];

function request(tenant: string): DecideInput {
  return decideRequest({ tenant, limits: LIMITS, cost: COST });
}

/** A decider through the proxy; `cap` is reached by its own timer (`decider`) or by ioredis' (`connection`). */
async function deciderThroughProxy(name: string, cap: 'decider' | 'connection'): Promise<{ decider: ResilientDecider; spool: FileSpool }> {
  const client = await connectDeciderRedis({
    url: `redis://127.0.0.1:${proxy.port}`,
    commandTimeoutMs: cap === 'connection' ? 100 : 10_000,
  });
  clients.push(client);
  const spool = new FileSpool(join(scratch, `${name}.spool`));
  const decider = new ResilientDecider(client, {
    shardCount: SHARDS,
    clock: systemClock,
    logger: createLogger({ level: 'silent', name: 'test' }),
    spool,
    // Redis' share can never time out here: only the wall-clock cap can end the wait
    timeouts: { redisShareMs: 60_000, maxWaitMs: cap === 'decider' ? 100 : 10_000 },
    breaker: { failureThreshold: 1, cooldownMs: 60_000 },
  });
  return { decider, spool };
}

/** Keeps this process' event loop busy for `ms` (the reply, held in the proxy, cannot arrive meanwhile anyway). */
function busyFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spinning: the process is busy, Redis is not
  }
}

async function admitted(tenant: string): Promise<number> {
  const start = periodAt(MONTH, Date.now()).startMs;
  return Number((await admin.get(admittedKey(shardOf(parseTenantId(tenant), SHARDS), parseTenantId(tenant), start))) ?? '0');
}

describe('a call past the wall-clock cap', () => {
  it.each(['decider', 'connection'] as const)(
    'is shed, never degraded and never charged when this process kept it waiting (cap reached by the %s timer)',
    async (cap) => {
      const { decider, spool } = await deciderThroughProxy(`busy-${cap}`, cap);
      const tenant = uniqueTenant('busy');
      // given a command held on its way to Redis
      proxy.hold();
      let outcome: Promise<unknown>;
      try {
        outcome = decider.decide(request(tenant)).catch((error: unknown) => error);
        // (the decider sends what a turn of the event loop decided at its end)
        for (let turn = 0; turn < 3; turn += 1) await new Promise((resolveTurn) => setImmediate(resolveTurn));
        // when this process is busy past the cap before it can look again
        busyFor(300);
        // then the request is shed as overloaded, and the breaker heard nothing
        expect(await outcome).toBeInstanceOf(OverloadedError);
        expect(decider.breaker.current).toBe('closed');
        expect(decider.callFailures()['wall-clock-cap']).toBe(1);
        expect(spool.size).toBe(1);
      } finally {
        proxy.release();
      }
      // and Redis, which ran the held command after all, keeps none of it once the void is replayed
      await waitFor('the held command to run', async () => (await admitted(tenant)) === COST, { timeoutMs: 10_000, intervalMs: 25 });
      await decider.replaySpool();
      expect(spool.size).toBe(0);
      expect(await admitted(tenant)).toBe(0);
      const next = await decider.decide(request(tenant));
      expect(next.kind).toBe('allowed');
      expect(next.kind === 'allowed' ? next.limits[0]?.remaining : undefined).toBe(CAPACITY - COST);
    },
  );

  it('degrades, and counts against the breaker, when the wait was Redis', async () => {
    const { decider } = await deciderThroughProxy('idle', 'decider');
    const tenant = uniqueTenant('idle');
    proxy.hold();
    try {
      // when the process waits idle past the cap (the command held: Redis, as far as it can tell, is not answering)
      const decision = await decider.decide(request(tenant));
      // then the plan's policy applies (open: admitted, marked degraded) and the breaker opened (threshold 1)
      expect(decision).toMatchObject({ kind: 'degraded', policy: 'open', isAdmitted: true });
      expect(decider.breaker.current).toBe('open');
      expect(decider.callFailures()['wall-clock-cap']).toBe(1);
    } finally {
      proxy.release();
    }
  });
});
