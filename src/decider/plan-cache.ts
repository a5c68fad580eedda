/**
 * Plans compiled once: everything about a limits array that does not depend on
 * the request (algorithm codes, a whale part's share, the script's definitions
 * in both modes a `defer` limit can take). Period quotas keep the definition of
 * the period last named, so a new one is built once a period, not per request.
 */
import { ValidationError, type LimitId } from '../shared/index.js';
import { limitDefinitionArgs, type LimitDefinition } from './decide-args.js';
import { bucketKeyTail } from './keys.js';
import { ALG, MODE, type CompiledLimit, type ModeCode } from './model/limits.js';
import { namingSkewMs, periodPairAt } from './model/period.js';
import { validateLimits } from './policy.js';
import type { LimitMode, LimitSpec } from './ports.js';

const MODE_CODE: Record<LimitMode, ModeCode> = { hard: MODE.hard, soft: MODE.soft, defer: MODE.defer, shadow: MODE.shadow };

/** A limit's script definition and model template in one mode. */
interface Variant {
  definition: string[];
  /** The definition joined: equal signatures are sent once per batch. */
  signature: string;
  /** The limit as the model takes it (keys filled in per request). */
  limit: CompiledLimit;
}

/** One limit of a plan, compiled once. */
export interface PlanLimit {
  spec: LimitSpec;
  alg: CompiledLimit['alg'];
  /** The limit (capacity, slots) of this part. */
  p1: number;
  /** `:b:v1:<limitId>` (see bucketKeyTail). */
  keyTail: string;
  /** In the limit's own mode, and as `hard` (a `defer` limit on a request that may not be deferred). */
  own: Variant;
  asHard: Variant;
  /** Period quotas: the variants of the period last named (periods change once a day or month). */
  period?: PeriodVariants;
}

/** A period quota's variants for one named period pair. */
export interface PeriodVariants {
  startMs: number;
  currentTail: string;
  nextTail: string;
  own: Variant;
  asHard: Variant;
}

/** A limits array compiled for one whale part (or unsplit). */
export interface CompiledPlan {
  limits: PlanLimit[];
  limitIds: LimitId[];
  limitKinds: LimitSpec['algorithm']['kind'][];
  modes: LimitMode[];
  hasDefer: boolean;
}

/** Which part of a whale tenant's limits a request is decided by. */
export interface PlanSplit {
  /** 1..64; 1 for an unsplit tenant. */
  subShards: number;
  /** The part, 0..subShards-1; undefined for an unsplit tenant. */
  part: number | undefined;
}

/**
 * Plans compiled once per limits array (and whale part). A limits array passed
 * to the decider is treated as immutable (plans are versioned data: a new
 * version is a new array); it is validated the first time it is seen.
 */
const plans = new WeakMap<LimitSpec[], Map<string, CompiledPlan>>();

/** A part's share of an integer amount: the parts sum to exactly `amount` (remainder to the first parts). */
export function shareOf(amount: number, { subShards, part }: PlanSplit): number {
  if (part === undefined) return amount;
  return Math.floor(amount / subShards) + (part < amount % subShards ? 1 : 0);
}

function variant(limit: LimitDefinition, limitId: LimitId): Variant {
  const definition = limitDefinitionArgs(limit, limitId);
  return { definition, signature: definition.join(','), limit: { ...limit, key: '' } };
}

/** The four script parameters of a limit, for this part. */
function partParams(spec: LimitSpec, split: PlanSplit): [CompiledLimit['alg'], number, number, number, number] {
  const { subShards, part } = split;
  const share = (amount: number, what: string): number => {
    if (part !== undefined && amount < subShards) {
      throw new ValidationError('INVALID_INPUT', `limit ${spec.id}: ${what} ${amount} cannot be divided over ${subShards} sub-shards`);
    }
    return shareOf(amount, split);
  };
  const alg = spec.algorithm;
  switch (alg.kind) {
    case 'token-bucket': {
      // a part refills the whole amount over subShards × the period: exactly 1/subShards of the rate
      const params: [CompiledLimit['alg'], number, number, number, number] = [
        ALG.tokenBucket,
        share(alg.capacity, 'capacity'),
        alg.refillAmount,
        alg.refillPeriodMs * (part === undefined ? 1 : subShards),
        0,
      ];
      if (params[1] * params[3] + params[3] * params[2] >= Number.MAX_SAFE_INTEGER) {
        throw new ValidationError(
          'INVALID_INPUT',
          `limit ${spec.id}: the refill period × ${subShards} sub-shards is too long for exact refill math`,
        );
      }
      return params;
    }
    case 'fixed-window':
      return [ALG.fixedWindow, share(alg.limit, 'limit'), alg.windowMs, 0, 0];
    case 'sliding-window':
      return [ALG.slidingWindow, share(alg.limit, 'limit'), alg.windowMs, 0, 0];
    case 'period-quota':
      return [ALG.periodQuota, share(alg.limit, 'limit'), 0, 0, 0];
    case 'concurrency':
      return [ALG.concurrency, share(alg.slots, 'slots'), alg.leaseTtlMs, 0, 0];
  }
}

function compileLimit(spec: LimitSpec, split: PlanSplit): PlanLimit {
  const [alg, p1, p2, p3, p4] = partParams(spec, split);
  const base = { alg, p1, p2, p3, p4, thresholds: [] };
  return {
    spec,
    alg,
    p1,
    keyTail: bucketKeyTail(spec.id),
    own: variant({ ...base, mode: MODE_CODE[spec.mode] }, spec.id),
    asHard: variant({ ...base, mode: MODE.hard }, spec.id),
  };
}

/**
 * The compiled plan of `limits` for one part (cached; validated on first sight).
 * @throws ValidationError `INVALID_INPUT` for invalid limits or a limit too small to divide over the parts
 */
export function compiledPlan(limits: LimitSpec[], split: PlanSplit): CompiledPlan {
  let byPart = plans.get(limits);
  const partKey = split.part === undefined ? '' : `${split.subShards}/${split.part}`;
  const cached = byPart?.get(partKey);
  if (cached !== undefined) return cached;
  if (byPart === undefined) {
    validateLimits(limits);
    byPart = new Map();
    plans.set(limits, byPart);
  }
  const plan: CompiledPlan = {
    limits: limits.map((spec) => compileLimit(spec, split)),
    limitIds: limits.map((limit) => limit.id),
    limitKinds: limits.map((limit) => limit.algorithm.kind),
    modes: limits.map((limit) => limit.mode),
    hasDefer: limits.some((limit) => limit.mode === 'defer'),
  };
  byPart.set(partKey, plan);
  return plan;
}

/**
 * A period quota's variants for the periods named at `localNowMs` (less the spec's
 * naming skew); rebuilt only when the named period changes.
 * @throws ValidationError `INVALID_INPUT` when the limit is not a period quota
 */
export function periodVariants(limit: PlanLimit, localNowMs: number): PeriodVariants {
  const alg = limit.spec.algorithm;
  if (alg.kind !== 'period-quota') throw new ValidationError('INVALID_INPUT', 'not a period quota');
  const { current, next } = periodPairAt(alg.period, localNowMs - namingSkewMs(alg.period));
  if (limit.period?.startMs !== current.startMs) {
    const base = {
      alg: ALG.periodQuota,
      p1: limit.p1,
      p2: current.startMs,
      p3: current.endMs,
      p4: next.endMs,
      thresholds: [...alg.thresholdsPercent],
    };
    limit.period = {
      startMs: current.startMs,
      currentTail: bucketKeyTail(limit.spec.id, current.startMs),
      nextTail: bucketKeyTail(limit.spec.id, next.startMs),
      own: variant({ ...base, mode: MODE_CODE[limit.spec.mode] }, limit.spec.id),
      asHard: variant({ ...base, mode: MODE.hard }, limit.spec.id),
    };
  }
  return limit.period;
}
