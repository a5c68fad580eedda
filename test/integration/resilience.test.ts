/**
 * The decider when Redis is sick, against a Redis of this file's own that it
 * pauses (SIGSTOP), kills and restarts from its AOF, and behind a TCP proxy
 * that loses a reply: fail-open keeps answering and spools, fail-closed
 * refuses, the local backstop bounds what passes, and the spool replays every
 * degraded event exactly once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startRedis, stopProcess, type ManagedProcess } from '../../infra/services.js';
import {
  FileSpool,
  RedisDecider,
  ResilientDecider,
  admittedKey,
  connectDeciderRedis,
  createDeciderRedis,
  periodAt,
  shardOf,
  usageStreamKey,
  type DecideInput,
  type DeciderRedis,
  type LimitSpec,
} from '../../src/decider/index.js';
import { createLogger, parseLimitId, parseTenantId, systemClock } from '../../src/shared/index.js';
import { waitFor } from '../support/poll.js';
import { uniqueTenant } from '../support/stack.js';
import { MONTH } from '../support/time.js';
import { streamEvents } from '../support/usage-stream.js';
import { decideRequest } from '../support/decide-input.js';

const SHARDS = 16;
const scratch = mkdtempSync(join(tmpdir(), 'tollgate-resilience-'));
const logger = createLogger({ level: 'silent', name: 'test' });
let port: number;
let redisProc: ManagedProcess;
let admin: DeciderRedis;

beforeAll(async () => {
  port = await freePort();
  redisProc = await startRedis({ dataDir: scratch, port, appendfsync: 'always' });
  admin = await connectDeciderRedis({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 5_000 });
});

afterAll(async () => {
  admin.disconnect();
  try {
    process.kill(redisProc.pid, 'SIGCONT');
  } catch {
    // not running
  }
  await stopProcess(redisProc);
  rmSync(scratch, { recursive: true, force: true });
});

const limit = (onDeciderDown: LimitSpec['onDeciderDown'], capacity = 1_000_000, id = 'burst'): LimitSpec => ({
  id: parseLimitId(id),
  scope: 'tenant',
  algorithm: { kind: 'token-bucket', capacity, refillAmount: 1, refillPeriodMs: 3_600_000 },
  mode: 'hard',
  onDeciderDown,
});

function request(tenant: string, limits: LimitSpec[], cost = 3): DecideInput {
  return decideRequest({ tenant, limits, cost });
}

function resilient(
  name: string,
  options: { instances?: number } = {},
): { decider: ResilientDecider; spool: FileSpool; client: DeciderRedis } {
  const client = createDeciderRedis({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 250, connectTimeoutMs: 500 });
  client.on('error', () => undefined);
  const spool = new FileSpool(join(scratch, `${name}.spool`));
  const decider = new ResilientDecider(client, {
    shardCount: SHARDS,
    clock: systemClock,
    logger,
    spool,
    breaker: { failureThreshold: 3, cooldownMs: 150, latencyBudgetMs: 1_000 },
    backstop: { instances: () => options.instances ?? 1, ceilingUnits: 10_000 },
  });
  return { decider, spool, client };
}

async function events(tenant: string): Promise<Record<string, string>[]> {
  const entries = streamEvents(await admin.xrange(usageStreamKey(shardOf(parseTenantId(tenant), SHARDS)), '-', '+'));
  return entries
    .map(([, fields]) => {
      const record: Record<string, string> = {};
      for (let i = 0; i < fields.length; i += 2) record[fields[i] as string] = fields[i + 1] as string;
      return record;
    })
    .filter((event) => event['tenant'] === tenant);
}

async function admitted(tenant: string): Promise<number> {
  const start = periodAt(MONTH, Date.now()).startMs;
  return Number((await admin.get(admittedKey(shardOf(parseTenantId(tenant), SHARDS), parseTenantId(tenant), start))) ?? '0');
}

const waitUntil = (check: () => Promise<boolean>, timeoutMs = 10_000): Promise<true> =>
  waitFor('the condition', check, { timeoutMs, intervalMs: 25 });

describe('Redis paused (SIGSTOP)', () => {
  it('fail-open answers and spools, fail-closed refuses, the backstop bounds what passes; the spool replays once', async () => {
    // given a healthy decider that has admitted one request
    const { decider, spool, client } = resilient('paused', { instances: 2 });
    await client.connect();
    const tenant = uniqueTenant();
    const closedTenant = uniqueTenant();
    const backstopTenant = uniqueTenant();
    const healthy = await decider.decide(request(tenant, [limit('open')]));
    expect(healthy.kind).toBe('allowed');

    // when Redis stops answering
    process.kill(redisProc.pid, 'SIGSTOP');
    let openDecisions;
    let closed;
    let local;
    try {
      // a fail-closed request reaches the paused Redis and times out: refused
      closed = await decider.decide(request(closedTenant, [limit('open'), limit('closed', 1_000_000, 'sensitive')]));
      // fail-open requests time out too, which opens the breaker: it counts failed calls (2 more
      // after the fail-closed one), not requests, so they are sent one after another
      openDecisions = [];
      for (let i = 0; i < 10; i += 1) openDecisions.push(await decider.decide(request(tenant, [limit('open')])));
      // with the breaker open, a backstop of capacity 100 / 2 instances = 50 units: 30 requests of 3 → 16 pass
      local = await Promise.all(Array.from({ length: 30 }, () => decider.decide(request(backstopTenant, [limit('local', 100)]))));
    } finally {
      process.kill(redisProc.pid, 'SIGCONT');
    }

    // then fail-open requests are admitted as degraded, never as a disguised allow
    expect(openDecisions.every((decision) => decision.kind === 'degraded' && decision.isAdmitted && decision.policy === 'open')).toBe(true);
    expect(closed).toMatchObject({ kind: 'degraded', policy: 'closed', isAdmitted: false });
    const passed = local.filter((decision) => decision.kind === 'degraded' && decision.isAdmitted);
    expect(passed).toHaveLength(16);
    expect(decider.breaker.current).not.toBe('closed');
    // 10 + 16 admissions, plus a void for each refusal that had reached Redis: the
    // fail-closed one, and a half-open probe if the breaker's cooldown ran out
    // during the backstop burst (refusals decided with the breaker open never left)
    const sentThenRefused = [closed, ...local].filter(
      (decision) => decision.kind === 'degraded' && !decision.isAdmitted && decision.reason.message !== 'decider breaker is open',
    ).length;
    expect(sentThenRefused).toBeGreaterThanOrEqual(1);
    expect(sentThenRefused).toBeLessThanOrEqual(2);
    expect(spool.size).toBe(10 + 16 + sentThenRefused);

    // and when Redis is back, the breaker closes and the spool is replayed exactly once
    await waitUntil(async () => {
      await decider.decide(request(uniqueTenant(), [limit('open')]));
      return decider.breaker.current === 'closed' && spool.size === 0;
    });
    await decider.replaySpool();
    // Requests that timed out may still have run once Redis resumed (they sat in
    // its socket buffer): each request is billed once, as reserved or as degraded.
    const tenantEvents = await events(tenant);
    expect(tenantEvents).toHaveLength(11);
    expect(new Set(tenantEvents.map((event) => event['id'])).size).toBe(11);
    // reserved or degraded, every event names the billing period it counts in (as the admitted counter does)
    expect(tenantEvents.every((event) => event['bp'] === String(periodAt(MONTH, Date.now()).startMs))).toBe(true);
    expect(await admitted(tenant)).toBe(3 * 11);
    // refused requests are never billed, even those Redis ran after it resumed
    expect(await admitted(closedTenant)).toBe(0);
    expect(await admitted(backstopTenant)).toBe(3 * 16);
    client.disconnect();
    spool.close();
  });
});

describe('Redis killed and restarted from its AOF', () => {
  it('keeps answering while it is down and bills degraded traffic exactly once afterwards', async () => {
    const { decider, spool, client } = resilient('killed');
    await client.connect();
    const tenant = uniqueTenant();
    // given 4 requests admitted and settled normally
    for (let i = 0; i < 4; i += 1) {
      const input = request(tenant, [limit('open')]);
      const decision = await decider.decide(input);
      await decider.settle({ ...input, actual: 1, decidedAtMs: decision.nowMs });
    }
    // when Redis dies
    process.kill(redisProc.pid, 'SIGKILL');
    await waitUntil(() => Promise.resolve(!isRunning(redisProc.pid)));
    const down = [];
    for (let i = 0; i < 6; i += 1) {
      const input = request(tenant, [limit('open')]);
      const decision = await decider.decide(input);
      down.push(decision);
      await decider.settle({ ...input, actual: 2, decidedAtMs: decision.nowMs });
    }
    expect(down.every((decision) => decision.kind === 'degraded' && decision.isAdmitted)).toBe(true);
    // and comes back from its AOF on the same port
    redisProc = await startRedis({ dataDir: scratch, port });
    await waitUntil(async () => {
      await decider.decide(request(uniqueTenant(), [limit('open')])).catch(() => undefined);
      return decider.breaker.current === 'closed' && spool.size === 0;
    }, 20_000);
    await decider.replaySpool();
    // then every admitted unit is counted once: 4 × 1 settled normally + 6 × 2 degraded
    expect(await admitted(tenant)).toBe(4 * 1 + 6 * 2);
    const tenantEvents = await events(tenant);
    expect(tenantEvents.filter((event) => event['type'] === 'usage.degraded.v1')).toHaveLength(6);
    expect(tenantEvents.filter((event) => event['type'] === 'usage.settled.v1')).toHaveLength(10);
    client.disconnect();
    spool.close();
  });
});

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('a lost reply', () => {
  let proxy: Server;
  let proxyPort: number;
  let isDroppingReplies = false;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    // A proxy that, while dropping, lets requests reach Redis, then loses the
    // reply with the connection (as a network cut would).
    proxy = createServer((downstream) => {
      const upstream = connect(port, '127.0.0.1');
      sockets.add(downstream).add(upstream);
      downstream.on('data', (chunk) => upstream.write(chunk));
      upstream.on('data', (chunk) => {
        if (!isDroppingReplies) {
          downstream.write(chunk);
          return;
        }
        downstream.destroy();
        upstream.destroy();
      });
      const close = (): void => {
        downstream.destroy();
        upstream.destroy();
      };
      downstream.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
    });
    proxyPort = await freePort();
    await new Promise<void>((resolveListen) => proxy.listen(proxyPort, '127.0.0.1', resolveListen));
  });

  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolveClose) => proxy.close(resolveClose));
  });

  it('a retry with the same request id after a lost reply debits once and appends one event', async () => {
    // given a decider behind the proxy
    const client = await connectDeciderRedis({ url: `redis://127.0.0.1:${proxyPort}`, commandTimeoutMs: 200 });
    client.on('error', () => undefined);
    const decider = new RedisDecider(client, { shardCount: SHARDS, clock: systemClock });
    const tenant = uniqueTenant();
    const input = request(tenant, [limit('open', 100)], 10);
    // when Redis runs the script but the reply never arrives
    isDroppingReplies = true;
    const lost = await decider.decide(input).catch((error: unknown) => error);
    expect((lost as { code?: string }).code).toBe('REDIS_UNAVAILABLE');
    isDroppingReplies = false;
    // and the client retries the same request once its connection is back
    await waitUntil(() => Promise.resolve(client.status === 'ready'));
    const retry = await decider.decide(input);
    // then the retry is the first decision replayed: one debit, one event
    expect(retry).toMatchObject({ kind: 'allowed', isReplay: true, limits: [{ remaining: 90 }] });
    expect(await events(tenant)).toHaveLength(1);
    expect(await admitted(tenant)).toBe(10);
    client.disconnect();
  });

  it('a lost reply that fell back to fail-open is not billed twice when the spool replays', async () => {
    const spool = new FileSpool(join(scratch, 'lost.spool'));
    const client = await connectDeciderRedis({ url: `redis://127.0.0.1:${proxyPort}`, commandTimeoutMs: 200 });
    client.on('error', () => undefined);
    const viaProxy = new ResilientDecider(client, { shardCount: SHARDS, clock: systemClock, logger, spool });
    const tenant = uniqueTenant();
    isDroppingReplies = true;
    const decision = await viaProxy.decide(request(tenant, [limit('open')], 7));
    isDroppingReplies = false;
    expect(decision).toMatchObject({ kind: 'degraded', isAdmitted: true });
    expect(spool.size).toBe(1);
    await waitUntil(() => Promise.resolve(client.status === 'ready'));
    const replay = await viaProxy.replaySpool();
    expect(replay).toMatchObject({ appended: 0, skipped: 1 });
    expect(await events(tenant)).toHaveLength(1);
    expect(await admitted(tenant)).toBe(7);
    client.disconnect();
    spool.close();
  });
});
