/**
 * Limit policies as data (DESIGN §4): a plan is a list of limits, each with a
 * scope, an algorithm with integer parameters, a mode and what to do when the
 * decider is down. `validateLimits` checks a whole list and reports every
 * problem at once; nothing reaches Redis unchecked.
 */
import { ValidationError, parseLimitId, type LimitId } from '../shared/index.js';
import { MAX_PERIOD_SECONDS, isValidTimeZone, type PeriodSpec } from './model/period.js';

/** Who a limit counts for. `global` limits span tenants and are decided in a separate call (not built yet). */
export type LimitScope = 'tenant' | 'apiKey' | 'ip';

export type LimitMode = 'hard' | 'soft' | 'defer' | 'shadow';

export type OnDeciderDown = 'open' | 'closed' | 'local';

export type LimitAlgorithm =
  | { kind: 'token-bucket'; capacity: number; refillAmount: number; refillPeriodMs: number }
  | { kind: 'fixed-window'; limit: number; windowMs: number }
  | { kind: 'sliding-window'; limit: number; windowMs: number }
  | { kind: 'period-quota'; limit: number; period: PeriodSpec; thresholdsPercent: number[] }
  | { kind: 'concurrency'; slots: number; leaseTtlMs: number };

export interface LimitSpec {
  id: LimitId;
  scope: LimitScope;
  algorithm: LimitAlgorithm;
  mode: LimitMode;
  onDeciderDown: OnDeciderDown;
}

const SAFE = Number.MAX_SAFE_INTEGER;

function checkInt(problems: string[], where: string, value: unknown, min: number, max: number): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    problems.push(`${where} must be an integer in ${min}..${max}, got ${JSON.stringify(value)}`);
  }
}

function checkAlgorithm(problems: string[], where: string, alg: LimitAlgorithm): void {
  switch (alg.kind) {
    case 'token-bucket':
      checkInt(problems, `${where}.capacity`, alg.capacity, 1, SAFE);
      checkInt(problems, `${where}.refillAmount`, alg.refillAmount, 1, SAFE);
      checkInt(problems, `${where}.refillPeriodMs`, alg.refillPeriodMs, 1, 366 * 86_400_000);
      // Exact integer refill math in Lua doubles needs capacity·period + period·amount < 2^53.
      if (alg.capacity * alg.refillPeriodMs + alg.refillPeriodMs * alg.refillAmount >= SAFE) {
        problems.push(`${where}: capacity × refillPeriodMs + refillPeriodMs × refillAmount must stay below 2^53`);
      }
      break;
    case 'fixed-window':
    case 'sliding-window':
      checkInt(problems, `${where}.limit`, alg.limit, 1, SAFE);
      checkInt(problems, `${where}.windowMs`, alg.windowMs, 1, 366 * 86_400_000);
      if (alg.kind === 'sliding-window' && 2 * alg.limit * alg.windowMs >= SAFE) {
        problems.push(`${where}: 2 × limit × windowMs must stay below 2^53`);
      }
      break;
    case 'period-quota':
      checkInt(problems, `${where}.limit`, alg.limit, 1, SAFE);
      if (alg.period.unit !== 'second' && alg.period.unit !== 'day' && alg.period.unit !== 'month') {
        problems.push(`${where}.period.unit must be second, day or month`);
      }
      if (alg.period.unit === 'second') checkInt(problems, `${where}.period.lengthSeconds`, alg.period.lengthSeconds ?? 1, 1, MAX_PERIOD_SECONDS);
      checkInt(problems, `${where}.period.anchorDay`, alg.period.anchorDay, 1, 31);
      if (!isValidTimeZone(alg.period.timeZone)) problems.push(`${where}.period.timeZone is not an IANA zone: ${alg.period.timeZone}`);
      if (alg.thresholdsPercent.length > 8) problems.push(`${where}.thresholdsPercent has more than 8 entries`);
      alg.thresholdsPercent.forEach((pct, index) => checkInt(problems, `${where}.thresholdsPercent[${index}]`, pct, 1, 1000));
      break;
    case 'concurrency':
      checkInt(problems, `${where}.slots`, alg.slots, 1, 1_000_000);
      checkInt(problems, `${where}.leaseTtlMs`, alg.leaseTtlMs, 1, 86_400_000);
      break;
    default:
      problems.push(`${where}.kind is unknown`);
  }
}

/**
 * Checks a list of limits.
 * @throws ValidationError `INVALID_INPUT` listing every problem, one per line
 */
export function validateLimits(limits: LimitSpec[]): void {
  const problems: string[] = [];
  if (limits.length > 64) problems.push('at most 64 limits apply to one request');
  const seen = new Set<string>();
  limits.forEach((limit, index) => {
    const where = `limits[${index}]`;
    try {
      parseLimitId(limit.id);
    } catch {
      problems.push(`${where}.id is not a valid id`);
    }
    if (seen.has(`${limit.scope}:${limit.id}`)) problems.push(`${where}.id ${limit.id} is repeated in scope ${limit.scope}`);
    seen.add(`${limit.scope}:${limit.id}`);
    if (!['tenant', 'apiKey', 'ip'].includes(limit.scope)) problems.push(`${where}.scope must be tenant, apiKey or ip`);
    if (!['hard', 'soft', 'defer', 'shadow'].includes(limit.mode)) problems.push(`${where}.mode must be hard, soft, defer or shadow`);
    if (!['open', 'closed', 'local'].includes(limit.onDeciderDown)) {
      problems.push(`${where}.onDeciderDown must be open, closed or local`);
    }
    checkAlgorithm(problems, `${where}.algorithm`, limit.algorithm);
  });
  if (problems.length > 0) {
    throw new ValidationError('INVALID_INPUT', `invalid limits:\n${problems.join('\n')}`, { details: { problems } });
  }
}
