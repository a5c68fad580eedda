/**
 * The degraded-mode spool (issue 15): how many degraded admissions one API
 * instance makes per second while Redis is unreachable (each entry written and
 * fdatasync'd before the answer), and how fast a spool of them is replayed into
 * the usage stream once Redis answers (one `append-usage.lua` call per entry,
 * as at a restart).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSpool, ResilientDecider, connectDeciderRedis, type DecideInput } from '../src/decider/index.js';
import { createLogger, parseEventId, parseKeyId, parseLimitId, parseTenantId, systemClock } from '../src/shared/index.js';
import type { Figure } from './graphql.js';
import type { BenchContext, BenchSection } from './run.js';

const ENTRIES = 5_000;
const IN_FLIGHT = 256;

function request(tenant: string, index: number): DecideInput {
  return {
    tenant: parseTenantId(tenant),
    keyId: parseKeyId('k1'),
    requestId: parseEventId(`r-${index}-${randomBytes(4).toString('hex')}`),
    operation: 'op',
    cost: 3,
    limits: [
      {
        id: parseLimitId('burst'),
        scope: 'tenant',
        algorithm: { kind: 'token-bucket', capacity: 1_000_000, refillAmount: 1, refillPeriodMs: 3_600_000 },
        mode: 'hard',
        onDeciderDown: 'open',
      },
    ],
    billingPeriod: { unit: 'month', anchorDay: 1, timeZone: 'UTC' },
    policyVersion: 1,
  };
}

export async function benchSpool(ctx: BenchContext): Promise<BenchSection> {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-bench-spool-'));
  const redis = await connectDeciderRedis({ url: `redis://127.0.0.1:${ctx.redisPort}`, commandTimeoutMs: 5_000 });
  const spool = new FileSpool(join(dir, 'decider.spool'));
  try {
    const decider = new ResilientDecider(redis, {
      shardCount: 256,
      clock: systemClock,
      logger: createLogger({ level: 'silent', name: 'bench' }),
      spool,
      // opened by hand and never probing: every decision is degraded, as while Redis is unreachable
      breaker: { cooldownMs: 3_600_000 },
    });
    for (let i = 0; i < 5; i += 1) decider.breaker.failure();
    const tenant = `bench-spool-${randomBytes(3).toString('hex')}`;
    const startedAt = performance.now();
    for (let i = 0; i < ENTRIES; i += 1) await decider.decide(request(tenant, i));
    const admitSeconds = (performance.now() - startedAt) / 1_000;
    // the same with 256 requests in flight, as an API instance under load sees it (group commit: one fdatasync per batch)
    const concurrentStartedAt = performance.now();
    let next = ENTRIES;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < 2 * ENTRIES) {
          next += 1;
          await decider.decide(request(tenant, next));
        }
      }),
    );
    const concurrentSeconds = (performance.now() - concurrentStartedAt) / 1_000;
    const replayStartedAt = performance.now();
    const replayed = await decider.replaySpool();
    const replaySeconds = (performance.now() - replayStartedAt) / 1_000;
    if (replayed.appended !== 2 * ENTRIES || spool.size !== 0)
      throw new Error(`spool replay appended ${replayed.appended} of ${2 * ENTRIES}`);
    const figures: Figure[] = [
      {
        name: 'spool_degraded_admissions_per_second',
        value: Math.round(ENTRIES / admitSeconds),
        unit: 'req/s',
        note: 'fail-open admissions with Redis unreachable, one after another, each spooled and fdatasync’d first',
      },
      {
        name: 'spool_degraded_admissions_per_second_concurrent',
        value: Math.round(ENTRIES / concurrentSeconds),
        unit: 'req/s',
        note: `the same with ${IN_FLIGHT} requests in flight: the entries of one event-loop turn share one fdatasync (group commit)`,
      },
      {
        name: 'spool_replay_entries_per_second',
        value: Math.round((2 * ENTRIES) / replaySeconds),
        unit: 'entries/s',
        note: `replaying a spool of ${2 * ENTRIES} entries into the usage stream (one append-usage.lua call each)`,
      },
    ];
    return {
      lines: [
        `- Degraded admissions (spooled, fdatasync'd): ${figures[0]?.value ?? 0} req/s one after another, ${figures[1]?.value ?? 0} req/s with ${IN_FLIGHT} in flight; a spool of ${2 * ENTRIES} replays at ${figures[2]?.value ?? 0} entries/s.`,
      ],
      figures,
    };
  } finally {
    spool.close();
    redis.disconnect();
    rmSync(dir, { recursive: true, force: true });
  }
}
