/**
 * tollgate as the bench servers run it (`bench/graphql-server.ts`, `bench/gateway-server.ts`): a ResilientDecider on
 * the run's Redis (256 shards, a file spool), one API key (`BENCH_API_KEY`) on a plan of two hard limits (a token
 * bucket per key, a monthly quota per tenant) no bench request exhausts, and a silent logger.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSpool, ResilientDecider, connectDeciderRedis } from '../src/decider/index.js';
import { InMemoryKeyStore, InMemoryPlanStore, type TollgateOptions } from '../src/graphql/index.js';
import { createLogger, parseLimitId, parsePlanId, systemClock } from '../src/shared/index.js';
import { BENCH_API_KEY } from './graphql-shared.js';

const MONTH = { unit: 'month', anchorDay: 1, timeZone: 'UTC' } as const;

/** `useTollgate`'s options for a bench server on the Redis at `redisPort`. */
export async function benchTollgateOptions(redisPort: string): Promise<TollgateOptions> {
  const logger = createLogger({ level: 'silent', name: 'bench' });
  const redis = await connectDeciderRedis({ url: `redis://127.0.0.1:${redisPort}`, commandTimeoutMs: 1_000 });
  const decider = new ResilientDecider(redis, {
    shardCount: 256,
    clock: systemClock,
    logger,
    spool: new FileSpool(join(mkdtempSync(join(tmpdir(), 'tollgate-bench-spool-')), 'bench.spool')),
    breaker: { latencyBudgetMs: 1_000 },
  });
  const keyStore = new InMemoryKeyStore();
  keyStore.add({ tenant: 'bench', keyId: 'k1', planId: 'bench', key: BENCH_API_KEY });
  const plans = new InMemoryPlanStore([
    {
      id: parsePlanId('bench'),
      version: 1,
      billingPeriod: MONTH,
      maxCostPerOperation: 10_000,
      limits: [
        {
          id: parseLimitId('burst'),
          scope: 'apiKey',
          algorithm: { kind: 'token-bucket', capacity: 1_000_000_000, refillAmount: 1_000_000, refillPeriodMs: 1_000 },
          mode: 'hard',
          onDeciderDown: 'open',
        },
        {
          id: parseLimitId('month'),
          scope: 'tenant',
          algorithm: { kind: 'period-quota', limit: 1_000_000_000_000, period: MONTH, thresholdsPercent: [] },
          mode: 'hard',
          onDeciderDown: 'open',
        },
      ],
    },
  ]);
  return { decider, keyStore, plans, logger };
}
