/**
 * The decider bench's workloads (bench/decider): the limits tollgate checks, and the key distributions both
 * libraries run (uniform over 100k tenants, Zipf s = 1.1 over 1M tenants), the same sequence for each.
 */
import type { DecideInput, LimitSpec } from '../../src/decider/index.js';
import { parseEventId, parseKeyId, parseLimitId } from '../../src/shared/index.js';

export const TENANTS = 100_000;
export const MONTH = { unit: 'month', anchorDay: 1, timeZone: 'UTC' } as const;
export const LIMITS: LimitSpec[] = [
  {
    id: parseLimitId('burst'),
    scope: 'apiKey',
    algorithm: { kind: 'token-bucket', capacity: 1_000_000, refillAmount: 1_000, refillPeriodMs: 1_000 },
    mode: 'hard',
    onDeciderDown: 'open',
  },
  {
    id: parseLimitId('minute'),
    scope: 'tenant',
    algorithm: { kind: 'sliding-window', limit: 1_000_000, windowMs: 60_000 },
    mode: 'hard',
    onDeciderDown: 'open',
  },
  {
    id: parseLimitId('month'),
    scope: 'tenant',
    algorithm: { kind: 'period-quota', limit: 1_000_000_000, period: MONTH, thresholdsPercent: [80, 100] },
    mode: 'hard',
    onDeciderDown: 'open',
  },
];

const keyId = parseKeyId('k1');
let requestCounter = 0;

/** Zipf exponent and population of the skewed workload. */
const ZIPF_S = 1.1;
const ZIPF_TENANTS = 1_000_000;
/** Length of each workload's precomputed tenant sequence (request i takes element i mod this). */
const SEQUENCE = 1 << 20;

/** A key distribution: request i goes to tenant `tenantAt(i)`; tollgate and rate-limiter-flexible run the same one. */
export interface Workload {
  name: 'uniform' | 'zipf';
  describe: string;
  tenantAt: (i: number) => string;
}

export const uniformIds = Array.from({ length: TENANTS }, (_, index) => `t${index}`);
export const UNIFORM: Workload = {
  name: 'uniform',
  describe: `uniform over ${TENANTS.toLocaleString('en')} tenants`,
  tenantAt: (i) => uniformIds[(i * 7919) % TENANTS] as string,
};

/** Ranks 0..n-1 drawn with P(k) ∝ 1/(k+1)^s: inverse CDF by binary search, a fixed LCG so every run draws the same. */
function zipfRanks(n: number, s: number, count: number): Uint32Array {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k += 1) {
    sum += 1 / Math.pow(k + 1, s);
    cdf[k] = sum;
  }
  const out = new Uint32Array(count);
  let x = 12345;
  for (let i = 0; i < count; i += 1) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    const u = (x / 2 ** 32) * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((cdf[mid] as number) < u) lo = mid + 1;
      else hi = mid;
    }
    out[i] = lo;
  }
  return out;
}

export function zipfWorkload(): Workload {
  const ranks = zipfRanks(ZIPF_TENANTS, ZIPF_S, SEQUENCE);
  const names = new Map<number, string>();
  const nameOf = (rank: number): string => {
    let name = names.get(rank);
    if (name === undefined) {
      name = `z${rank}`;
      names.set(rank, name);
    }
    return name;
  };
  for (const rank of ranks) nameOf(rank);
  const distinct = names.size;
  const top = ranks.reduce((n, rank) => n + (rank === 0 ? 1 : 0), 0) / SEQUENCE;
  return {
    name: 'zipf',
    describe: `Zipf s=${ZIPF_S} over ${ZIPF_TENANTS.toLocaleString('en')} tenants (${distinct.toLocaleString('en')} distinct in ${SEQUENCE.toLocaleString('en')} draws; the hottest takes ${(top * 100).toFixed(1)}%)`,
    tenantAt: (i) => names.get(ranks[i % SEQUENCE] as number) as string,
  };
}

export function decideInput(workload: Workload, i: number, limits: LimitSpec[] = LIMITS): DecideInput {
  requestCounter += 1;
  return {
    tenant: workload.tenantAt(i) as DecideInput['tenant'],
    keyId,
    requestId: parseEventId(`b${requestCounter}`),
    operation: 'listProducts',
    cost: 3,
    limits,
    billingPeriod: MONTH,
    policyVersion: 1,
  };
}
