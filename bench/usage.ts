/**
 * The tenant usage API and the what-if replay (issue 17):
 * 1. `usage_api_p99_ms`: one tenant with a year of hourly ledger usage (one entry per hour, two operations,
 *    posted through the ledger so the rollups are the real ones), then repeatedly what a dashboard asks at
 *    once: `usage` (the limits peeked in Redis, the account, the warnings) and `usageSeries` of the whole
 *    year by hour (8 760 buckets), both through `UsageService` in-process (no HTTP), against DynamoDB Local
 *    (in memory) and this run's Redis. p99 of the pair's wall time, after a warm-up.
 * 2. `replay_events_per_s`: `replayUsage` over synthetic recorded usage (reservations, a settlement for
 *    one in ten) against a plan of a token bucket, a monthly quota with thresholds and a per-key window.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, localDynamoClient, startDynamo, stopProcess } from '../infra/services.js';
import { ensureTables } from '../infra/tables.js';
import { DynamoAccountStore, DynamoPeriodStore, DynamoWarningReader, replayUsage, type RecordedEntry } from '../src/billing/index.js';
import { connectDeciderRedis, periodAt, type LimitSpec } from '../src/decider/index.js';
import { planForTenant, type Identity, type Plan } from '../src/graphql/index.js';
import { UsageService } from '../src/graphql/usage/usage-service.js';
import { DynamoLedgerStore, DynamoUsageReader, type LedgerEntry } from '../src/metering/index.js';
import { parseEventId, parseKeyId, parseLimitId, parsePlanId, parseTenantId, systemClock } from '../src/shared/index.js';
import type { Figure } from './graphql.js';
import type { BenchContext, BenchSection } from './run.js';

const TABLE_PREFIX = 'bench_usage_';
const HOUR_MS = 3_600_000;
const MONTH = { unit: 'month', anchorDay: 1, timeZone: 'UTC' } as const;
const SAMPLES = 200;
const REPLAY_EVENTS = 200_000;

const LIMITS: LimitSpec[] = [
  {
    id: parseLimitId('burst'),
    scope: 'tenant',
    mode: 'hard',
    onDeciderDown: 'closed',
    algorithm: { kind: 'token-bucket', capacity: 1_000, refillAmount: 100, refillPeriodMs: 1_000 },
  },
  {
    id: parseLimitId('monthly'),
    scope: 'tenant',
    mode: 'hard',
    onDeciderDown: 'closed',
    algorithm: { kind: 'period-quota', limit: 1_000_000, period: MONTH, thresholdsPercent: [50, 80, 100] },
  },
  {
    id: parseLimitId('per-key'),
    scope: 'apiKey',
    mode: 'soft',
    onDeciderDown: 'closed',
    algorithm: { kind: 'sliding-window', limit: 5_000, windowMs: 60_000 },
  },
];

const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;

/** A year of hourly entries, each in its own month's period partition, posted through the ledger (rollups included). */
async function seedYear(ledger: DynamoLedgerStore, tenant: ReturnType<typeof parseTenantId>, nowMs: number): Promise<number> {
  const entries: LedgerEntry[] = [];
  const firstHour = nowMs - (nowMs % HOUR_MS) - 365 * 24 * HOUR_MS;
  for (let hour = 0; hour < 365 * 24; hour += 1) {
    const atMs = firstHour + hour * HOUR_MS;
    entries.push({
      tenant,
      periodStart: new Date(periodAt(MONTH, atMs).startMs).toISOString(),
      eventId: parseEventId(`h${hour}`),
      kind: 'usage.reserved.v1',
      amount: 1 + (hour % 17),
      operation: hour % 3 === 0 ? 'searchProducts' : 'getProduct',
      atMs,
    });
  }
  for (let at = 0; at < entries.length; at += 1_000) await ledger.postEntries(entries.slice(at, at + 1_000));
  return entries.length;
}

async function benchUsageApi(ctx: BenchContext): Promise<{ p50: number; p99: number; points: number; seeded: number }> {
  const scratch = mkdtempSync(join(tmpdir(), 'bench-usage-'));
  const port = await freePort();
  const dynamoProcess = await startDynamo({ dataDir: scratch, port, persistent: false });
  const dynamo = localDynamoClient(`http://127.0.0.1:${port}`);
  const redis = await connectDeciderRedis({ url: `redis://127.0.0.1:${ctx.redisPort}`, commandTimeoutMs: 2_000 });
  try {
    await ensureTables(dynamo, TABLE_PREFIX);
    const tenant = parseTenantId('bench-usage');
    const nowMs = Date.now();
    const seeded = await seedYear(new DynamoLedgerStore(dynamo, { tablePrefix: TABLE_PREFIX }), tenant, nowMs);
    const plan: Plan = planForTenant(
      { id: parsePlanId('bench'), version: 1, limits: LIMITS, billingPeriod: MONTH, maxCostPerOperation: 10_000 },
      undefined,
    );
    const identity: Identity = {
      kind: 'apiKey',
      tenant,
      keyId: parseKeyId('k1'),
      planId: plan.id,
      keyFingerprint: null,
      clientIp: undefined,
    };
    const service = new UsageService({
      redis,
      shardCount: 64,
      accounts: new DynamoAccountStore(dynamo, { tablePrefix: TABLE_PREFIX }),
      periods: new DynamoPeriodStore(dynamo, { tablePrefix: TABLE_PREFIX }),
      warnings: new DynamoWarningReader(dynamo, { tablePrefix: TABLE_PREFIX }),
      reader: new DynamoUsageReader(dynamo, { tablePrefix: TABLE_PREFIX }),
      clock: systemClock,
    });
    const caller = { identity, plan };
    const toMs = nowMs - (nowMs % HOUR_MS) + HOUR_MS;
    const series = {
      from: new Date(toMs - 366 * 24 * HOUR_MS).toISOString(),
      to: new Date(toMs).toISOString(),
      granularity: 'HOUR',
      by: 'OPERATION',
    } as const;
    const once = async (): Promise<{ ms: number; points: number }> => {
      const started = performance.now();
      const [, points] = await Promise.all([service.usage(caller), service.series(caller, series)]);
      return { ms: performance.now() - started, points: points.length };
    };
    for (let warm = 0; warm < 20; warm += 1) await once();
    const samples: number[] = [];
    let points = 0;
    for (let sample = 0; sample < SAMPLES; sample += 1) {
      const result = await once();
      samples.push(result.ms);
      points = result.points;
    }
    samples.sort((a, b) => a - b);
    return { p50: percentile(samples, 50), p99: percentile(samples, 99), points, seeded };
  } finally {
    redis.disconnect();
    dynamo.destroy();
    await stopProcess(dynamoProcess);
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Recorded usage over a day: a request every few ms, one in ten settled with a refund. */
function syntheticEntries(count: number, startMs: number): RecordedEntry[] {
  const entries: RecordedEntry[] = [];
  for (let index = 0; entries.length < count; index += 1) {
    const atMs = startMs + index * 3;
    entries.push({
      eventId: `r${index}`,
      kind: 'usage.reserved.v1',
      amount: 5 + (index % 7),
      operation: 'getProduct',
      atMs,
      keyId: `k${index % 4}`,
    });
    if (index % 10 === 0)
      entries.push({
        eventId: `r${index}.settled`,
        kind: 'usage.settled.v1',
        amount: -3,
        operation: 'getProduct',
        atMs: atMs + 1,
        keyId: `k${index % 4}`,
      });
  }
  return entries.slice(0, count);
}

function benchReplay(): { perSecond: number; denied: number } {
  const entries = syntheticEntries(REPLAY_EVENTS, Date.UTC(2026, 10, 2));
  const tenant = parseTenantId('bench-replay');
  let best = 0;
  let denied = 0;
  for (let round = 0; round < 3; round += 1) {
    const started = performance.now();
    const result = replayUsage({ tenant, limits: LIMITS, billingPeriod: MONTH, entries, shouldKeepRequests: false });
    const seconds = (performance.now() - started) / 1000;
    best = Math.max(best, entries.length / seconds);
    denied = result.totals.denied;
  }
  return { perSecond: best, denied };
}

export async function benchUsage(ctx: BenchContext): Promise<BenchSection> {
  const api = await benchUsageApi(ctx);
  const replay = benchReplay();
  const figures: Figure[] = [
    {
      name: 'usage_api_p99_ms',
      value: Math.round(api.p99 * 10) / 10,
      unit: 'ms',
      note: `usage + usageSeries (a year by hour, ${api.points} points from ${api.seeded} ledgered hours), in-process service, DynamoDB Local; p50 ${api.p50.toFixed(1)} ms; target <= 50`,
    },
    {
      name: 'replay_events_per_s',
      value: Math.round(replay.perSecond),
      unit: 'events/s',
      note: `replayUsage over ${REPLAY_EVENTS} recorded entries, 3 limits (token bucket, monthly quota, per-key window), ${replay.denied} denied; best of 3; target >= 100000`,
    },
  ];
  return {
    lines: [
      `usage API: usage + a year of hourly series p50 ${api.p50.toFixed(1)} ms, p99 ${api.p99.toFixed(1)} ms (${SAMPLES} samples)`,
      `replay: ${Math.round(replay.perSecond)} events/s`,
    ],
    figures,
  };
}
