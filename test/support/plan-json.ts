/** Plan documents as the admin API and the CLI take them, for the rollout and dashboard tests. */
import { MONTH } from './time.js';

/**
 * A plan whose `burst` bucket holds `capacity` units (tenant-wide, refilled 1 unit an hour, fail-open), monthly
 * billing, with `extra` limits after it.
 */
export function bucketPlan(id: string, version: number, capacity: number, extra: unknown[] = []): Record<string, unknown> {
  return {
    id,
    version,
    billingPeriod: MONTH,
    maxCostPerOperation: 1_000,
    limits: [
      {
        id: 'burst',
        scope: 'tenant',
        algorithm: { kind: 'token-bucket', capacity, refillAmount: 1, refillPeriodMs: 3_600_000 },
        mode: 'hard',
        onDeciderDown: 'open',
      },
      ...extra,
    ],
  };
}
