/**
 * Compiles a request and its limits into `lua/decide.lua` keys and arguments
 * (and the identical input of the pure model). Everything is validated here,
 * before Redis: ids, integer costs below 2^53, limit parameters.
 */
import {
  ValidationError,
  type EventId,
  type KeyId,
  type LimitId,
  type TenantId,
} from '../shared/index.js';
import { admittedKey, bucketKeyHead, bucketKeyTail, parseIpHex, partOf, requestRecordKey, shardOfPart, usageStreamKey, type ShardId } from './keys.js';
import { ALG, MODE, type CompiledLimit, type ModeCode, type ModelRequest } from './model/limits.js';
import { periodPairAt, type PeriodSpec } from './model/period.js';
import { validateLimits, type LimitMode, type LimitSpec } from './policy.js';

/** One request to decide. */
export interface DecideInput {
  tenant: TenantId;
  keyId: KeyId;
  /** Deterministic per request (an idempotency key or request id): a retry reuses it. */
  requestId: EventId;
  /** GraphQL operation name (or `anonymous`), recorded in the usage event. */
  operation: string;
  /** Requested cost in integer units, 0..2^53-1. */
  cost: number;
  /** Every limit that applies to this request. */
  limits: LimitSpec[];
  /** The tenant's billing period (anchor day and zone), for the admitted counter. */
  billingPeriod: PeriodSpec;
  /** Version of the plan the limits come from, recorded in the event. */
  policyVersion: number;
  /** Client address, required when an `ip`-scoped limit applies. */
  clientIp?: string;
  /** Whether `defer` limits may defer this operation; if not, they act as `hard`. @default false */
  isDeferrable?: boolean;
  /**
   * How long Redis remembers this admitted request (retries return the first decision; settle and
   * the degraded-mode replay read it), 1 s .. 400 days. Every admitted request holds ~184 B (measured) for
   * this long: keep it short for request ids, long (e.g. 24 h) for client idempotency keys.
   * @default the decider's `recordTtlMs`
   */
  recordTtlMs?: number;
  /**
   * Whale tenants: the number of sub-shards (1..64) the tenant's limits are
   * divided over, each part on its own logical shard; a request is decided by
   * one part (chosen by its request id). See the README for the bounds. @default 1
   */
  subShards?: number;
}

export interface CompileOptions {
  shardCount: number;
  /** The local clock, used only to name periods; Redis `TIME` decides which applies. */
  localNowMs: number;
}

/** A request ready for the script: its keys and arguments, and the same values for the model. */
export interface CompiledRequest {
  shard: ShardId;
  /** A whale tenant's part (undefined for an unsplit tenant). */
  part: number | undefined;
  /** The request's own record lifetime (undefined: the decider's default). */
  recordTtlMs: number | undefined;
  /** stream, record, admitted (current, next), then each limit's key(s). */
  keys: string[];
  /** requestId, cost, billing period ends, the usage event's tenant, key, operation, policy version, billing period start. */
  head: string[];
  /** Each limit's definition as the script reads it (shared by the batch when equal). */
  definitions: string[][];
  /** Each definition joined: equal signatures are sent once per batch. */
  signatures: string[];
  requestId: EventId;
  /** The same request as the pure model takes it (built on each read). */
  readonly model: ModelRequest;
  limitIds: LimitId[];
  limitKinds: LimitSpec['algorithm']['kind'][];
  modes: LimitMode[];
  billingStartMs: number;
  billingEndMs: number;
  billingNextEndMs: number;
}

/** The usage event's fields (name, value, ...) common to every event type, then `extra`. */
function eventFields(input: DecideInput, id: string, type: string, extra: string[]): string[] {
  return [
    'id', id,
    'type', type,
    'tenant', input.tenant,
    'key', input.keyId,
    'op', input.operation,
    ...extra,
    'pv', String(input.policyVersion),
  ];
}

/** Longest request record lifetime: 400 days. */
export const MAX_RECORD_TTL_MS = 400 * 86_400_000;

/** How far the local clock may trail Redis when naming periods: periods are named from now − this. */
export const PERIOD_SKEW_ALLOWANCE_MS = 60_000;

/**
 * How far back a spec's periods are named: the skew allowance, but at most half of a `second`
 * period, so the named pair (current and next) still contains the local now (a 4-second period
 * named 60 s back would always be stale). Clock skew tolerated either way: that amount.
 */
export function namingSkewMs(spec: PeriodSpec): number {
  if (spec.unit !== 'second') return PERIOD_SKEW_ALLOWANCE_MS;
  return Math.min(PERIOD_SKEW_ALLOWANCE_MS, Math.floor(((spec.lengthSeconds ?? 1) * 1000) / 2));
}

const OPERATION = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

const MODE_CODE: Record<LimitMode, ModeCode> = { hard: MODE.hard, soft: MODE.soft, defer: MODE.defer, shadow: MODE.shadow };

/** One limit of a plan, compiled once: what does not depend on the request. */
interface PlanLimit {
  spec: LimitSpec;
  alg: CompiledLimit['alg'];
  /** The limit (capacity, slots) of this part. */
  p1: number;
  /** `:b:v1:<limitId>` (see bucketKeyTail). */
  keyTail: string;
  /** The limit as the model takes it, for each mode (key filled in per request). */
  model: CompiledLimit;
  modelAsHard: CompiledLimit;
  /** Definitions (script arguments) for the two possible modes; period quotas build theirs per period. */
  definition: string[];
  definitionAsHard: string[];
  signature: string;
  signatureAsHard: string;
  /** Period quotas: the definition of the period last named (periods change once a day or month). */
  period?: {
    startMs: number;
    currentTail: string;
    nextTail: string;
    definition: string[];
    definitionAsHard: string[];
    signature: string;
    signatureAsHard: string;
    limit: CompiledLimit;
    limitAsHard: CompiledLimit;
  };
}

interface CompiledPlan {
  limits: PlanLimit[];
  limitIds: LimitId[];
  limitKinds: LimitSpec['algorithm']['kind'][];
  modes: LimitMode[];
  hasDefer: boolean;
}

/**
 * Plans compiled once per limits array (and whale part). A limits array passed
 * to the decider is treated as immutable (plans are versioned data: a new
 * version is a new array); it is validated the first time it is seen.
 */
const plans = new WeakMap<LimitSpec[], Map<string, CompiledPlan>>();

/** Part `part` of `subShards` of an integer amount: the parts sum to exactly `amount` (remainder to the first parts). */
export function shareOf(amount: number, subShards: number, part: number | undefined): number {
  if (part === undefined) return amount;
  return Math.floor(amount / subShards) + (part < amount % subShards ? 1 : 0);
}

/** The script's definition of a limit; with thresholds, the limit id follows (named in the event's `warn`). */
function definitionOf(
  alg: number, mode: number, p1: number, p2: number, p3: number, p4: number, thresholds: readonly number[], limitId?: string,
): string[] {
  const definition = [String(alg), String(mode), String(p1), String(p2), String(p3), String(p4), String(thresholds.length), ...thresholds.map(String)];
  if (thresholds.length > 0 && limitId !== undefined) definition.push(limitId);
  return definition;
}

function compilePlan(limits: LimitSpec[], subShards: number, part: number | undefined): CompiledPlan {
  let byPart = plans.get(limits);
  const partKey = part === undefined ? '' : `${subShards}/${part}`;
  const cached = byPart?.get(partKey);
  if (cached !== undefined) return cached;
  if (byPart === undefined) {
    validateLimits(limits);
    byPart = new Map();
    plans.set(limits, byPart);
  }
  const share = (amount: number, what: string, spec: LimitSpec): number => {
    if (part !== undefined && amount < subShards) {
      throw new ValidationError('INVALID_INPUT', `limit ${spec.id}: ${what} ${amount} cannot be divided over ${subShards} sub-shards`);
    }
    return shareOf(amount, subShards, part);
  };
  const compiled: PlanLimit[] = limits.map((spec) => {
    const alg = spec.algorithm;
    const mode = MODE_CODE[spec.mode];
    let code: CompiledLimit['alg'];
    let params: [number, number, number, number];
    switch (alg.kind) {
      case 'token-bucket':
        code = ALG.tokenBucket;
        // a part refills the whole amount over subShards × the period: exactly 1/subShards of the rate
        params = [share(alg.capacity, 'capacity', spec), alg.refillAmount, alg.refillPeriodMs * (part === undefined ? 1 : subShards), 0];
        if (params[0] * params[2] + params[2] * params[1] >= Number.MAX_SAFE_INTEGER) {
          throw new ValidationError('INVALID_INPUT', `limit ${spec.id}: the refill period × ${subShards} sub-shards is too long for exact refill math`);
        }
        break;
      case 'fixed-window':
        code = ALG.fixedWindow;
        params = [share(alg.limit, 'limit', spec), alg.windowMs, 0, 0];
        break;
      case 'sliding-window':
        code = ALG.slidingWindow;
        params = [share(alg.limit, 'limit', spec), alg.windowMs, 0, 0];
        break;
      case 'period-quota':
        code = ALG.periodQuota;
        params = [share(alg.limit, 'limit', spec), 0, 0, 0];
        break;
      case 'concurrency':
        code = ALG.concurrency;
        params = [share(alg.slots, 'slots', spec), alg.leaseTtlMs, 0, 0];
        break;
    }
    const definition = definitionOf(code, mode, ...params, []);
    const definitionAsHard = definitionOf(code, MODE.hard, ...params, []);
    const [p1, p2, p3, p4] = params;
    return {
      spec,
      alg: code,
      p1: params[0],
      keyTail: bucketKeyTail(spec.id),
      model: { alg: code, mode, p1, p2, p3, p4, thresholds: [], key: '' },
      modelAsHard: { alg: code, mode: MODE.hard, p1, p2, p3, p4, thresholds: [], key: '' },
      definition,
      definitionAsHard,
      signature: definition.join(','),
      signatureAsHard: definitionAsHard.join(','),
    };
  });
  const plan: CompiledPlan = {
    limits: compiled,
    limitIds: limits.map((limit) => limit.id),
    limitKinds: limits.map((limit) => limit.algorithm.kind),
    modes: limits.map((limit) => limit.mode),
    hasDefer: limits.some((limit) => limit.mode === 'defer'),
  };
  byPart.set(partKey, plan);
  return plan;
}

/** The period quota's definition for the periods named at `localNowMs` (less the spec's skew; cached per period). */
function periodDefinition(limit: PlanLimit, localNowMs: number): NonNullable<PlanLimit['period']> {
  const alg = limit.spec.algorithm;
  if (alg.kind !== 'period-quota') throw new ValidationError('INVALID_INPUT', 'not a period quota');
  const { current, next } = periodPairAt(alg.period, localNowMs - namingSkewMs(alg.period));
  if (limit.period?.startMs !== current.startMs) {
    const mode = MODE_CODE[limit.spec.mode];
    const definition = definitionOf(ALG.periodQuota, mode, limit.p1, current.startMs, current.endMs, next.endMs, alg.thresholdsPercent, limit.spec.id);
    const definitionAsHard = definitionOf(
      ALG.periodQuota, MODE.hard, limit.p1, current.startMs, current.endMs, next.endMs, alg.thresholdsPercent, limit.spec.id,
    );
    limit.period = {
      startMs: current.startMs,
      currentTail: bucketKeyTail(limit.spec.id, current.startMs),
      nextTail: bucketKeyTail(limit.spec.id, next.startMs),
      definition,
      definitionAsHard,
      signature: definition.join(','),
      signatureAsHard: definitionAsHard.join(','),
      limit: {
        alg: ALG.periodQuota, mode, p1: limit.p1, p2: current.startMs, p3: current.endMs, p4: next.endMs,
        thresholds: [...alg.thresholdsPercent], key: '',
      },
      limitAsHard: {
        alg: ALG.periodQuota, mode: MODE.hard, p1: limit.p1, p2: current.startMs, p3: current.endMs, p4: next.endMs,
        thresholds: [...alg.thresholdsPercent], key: '',
      },
    };
  }
  return limit.period;
}

/**
 * @throws ValidationError `INVALID_INPUT` / `INVALID_ID` for a bad cost, operation, address or limit
 */
export function compileRequest(input: DecideInput, options: CompileOptions): CompiledRequest {
  if (!Number.isSafeInteger(input.cost) || input.cost < 0) {
    throw new ValidationError('INVALID_INPUT', `cost must be an integer in 0..2^53-1, got ${String(input.cost)}`);
  }
  if (!OPERATION.test(input.operation)) {
    throw new ValidationError('INVALID_INPUT', `invalid operation name ${JSON.stringify(input.operation.slice(0, 80))}`);
  }
  if (!Number.isSafeInteger(input.policyVersion) || input.policyVersion < 0) {
    throw new ValidationError('INVALID_INPUT', `policyVersion must be a non-negative integer`);
  }
  if (input.recordTtlMs !== undefined && (!Number.isSafeInteger(input.recordTtlMs) || input.recordTtlMs < 1_000 || input.recordTtlMs > MAX_RECORD_TTL_MS)) {
    throw new ValidationError('INVALID_INPUT', `recordTtlMs must be an integer in 1000..${MAX_RECORD_TTL_MS}`);
  }
  const subShards = input.subShards ?? 1;
  const part = partOf(input.requestId, subShards);
  const plan = compilePlan(input.limits, subShards, part);
  const shard = shardOfPart(input.tenant, options.shardCount, part);
  const { current: billing, next: billingNext } = periodPairAt(input.billingPeriod, options.localNowMs - namingSkewMs(input.billingPeriod));

  const recordKey = requestRecordKey(shard, input.tenant, input.requestId, part);
  const keys = [
    usageStreamKey(shard),
    recordKey,
    admittedKey(shard, input.tenant, billing.startMs, part),
    admittedKey(shard, input.tenant, billingNext.startMs, part),
  ];
  // at most one key head per scope; the ip is parsed only when an ip-scoped limit applies
  // (no closures here: this runs once per request)
  let tenantHead: string | undefined;
  let keyHead: string | undefined;
  let ipHead: string | undefined;
  const asHard = plan.hasDefer && input.isDeferrable !== true;
  const definitions: string[][] = [];
  const signatures: string[] = [];
  const templates: CompiledLimit[] = [];
  for (const limit of plan.limits) {
    let head: string;
    const scope = limit.spec.scope;
    if (scope === 'tenant') {
      head = tenantHead ??= bucketKeyHead(shard, input.tenant, { scope: 'tenant' }, part);
    } else if (scope === 'apiKey') {
      head = keyHead ??= bucketKeyHead(shard, input.tenant, { scope: 'apiKey', keyId: input.keyId }, part);
    } else {
      if (input.clientIp === undefined) {
        throw new ValidationError('INVALID_INPUT', `limit ${limit.spec.id} is ip-scoped but the request has no client address`);
      }
      head = ipHead ??= bucketKeyHead(shard, input.tenant, { scope: 'ip', ipHex: parseIpHex(input.clientIp) }, part);
    }
    const hard = asHard && limit.spec.mode === 'defer';
    if (limit.alg === ALG.periodQuota) {
      const period = periodDefinition(limit, options.localNowMs);
      keys.push(head + period.currentTail, head + period.nextTail);
      definitions.push(hard ? period.definitionAsHard : period.definition);
      signatures.push(hard ? period.signatureAsHard : period.signature);
      templates.push(hard ? period.limitAsHard : period.limit);
    } else {
      keys.push(head + limit.keyTail);
      definitions.push(hard ? limit.definitionAsHard : limit.definition);
      signatures.push(hard ? limit.signatureAsHard : limit.signature);
      templates.push(hard ? limit.modelAsHard : limit.model);
    }
  }
  const requestHead = [
    input.requestId,
    String(input.cost),
    String(billing.endMs),
    String(billingNext.endMs),
    input.tenant,
    input.keyId,
    input.operation,
    String(input.policyVersion),
    String(billing.startMs),
  ];
  return new Compiled(
    shard, part, input.recordTtlMs, keys, requestHead, definitions, signatures, templates, input.requestId, input.cost, recordKey,
    plan, billing.startMs, billing.endMs, billingNext.endMs,
  );
}

/** CompiledRequest as a class: created once per request, so its shape is fixed and its model view lazy. */
class Compiled implements CompiledRequest {
  readonly limitIds: LimitId[];
  readonly limitKinds: LimitSpec['algorithm']['kind'][];
  readonly modes: LimitMode[];

  constructor(
    readonly shard: ShardId,
    readonly part: number | undefined,
    readonly recordTtlMs: number | undefined,
    readonly keys: string[],
    readonly head: string[],
    readonly definitions: string[][],
    readonly signatures: string[],
    private readonly templates: CompiledLimit[],
    readonly requestId: EventId,
    private readonly cost: number,
    private readonly recordKey: string,
    plan: CompiledPlan,
    readonly billingStartMs: number,
    readonly billingEndMs: number,
    readonly billingNextEndMs: number,
  ) {
    this.limitIds = plan.limitIds;
    this.limitKinds = plan.limitKinds;
    this.modes = plan.modes;
  }

  get model(): ModelRequest {
    let at = 4;
    const limits = this.templates.map((template) => {
      const key = this.keys[at] as string;
      if (template.alg === ALG.periodQuota) {
        at += 2;
        return { ...template, key, nextKey: this.keys[at - 1] as string };
      }
      at += 1;
      return { ...template, key };
    });
    return { requestId: this.requestId, recordKey: this.recordKey, cost: this.cost, limits };
  }
}

/** A settlement: the decided request and what it actually cost. */
export interface SettleInput extends DecideInput {
  /** Actual cost in integer units, measured after execution. */
  actual: number;
  /** The decision's `nowMs` (Redis time): names the periods the decision counted in. */
  decidedAtMs: number;
}

/**
 * Compiles `lua/settle.lua` keys and arguments: the request's own keys (so the
 * same slot), the decided cost and the actual one.
 * @throws ValidationError for a bad actual cost (and everything compileRequest checks)
 */
export function compileSettle(input: SettleInput, options: Pick<CompileOptions, 'shardCount'>): { keys: string[]; args: string[] } {
  if (!Number.isSafeInteger(input.actual) || input.actual < 0) {
    throw new ValidationError('INVALID_INPUT', `actual cost must be an integer in 0..2^53-1, got ${String(input.actual)}`);
  }
  if (!Number.isSafeInteger(input.decidedAtMs) || input.decidedAtMs < 0) {
    throw new ValidationError('INVALID_INPUT', 'decidedAtMs must be the decision time in ms');
  }
  const compiled = compileRequest(input, { shardCount: options.shardCount, localNowMs: input.decidedAtMs });
  const fields = eventFields(input, `${input.requestId}.settled`, 'usage.settled.v1', [
    'requested', String(input.cost),
    'actual', String(input.actual),
  ]);
  return {
    keys: compiled.keys,
    args: [
      String(SETTLE_LAYOUT_VERSION),
      input.requestId,
      String(input.cost),
      String(input.actual),
      String(compiled.billingEndMs),
      String(compiled.billingNextEndMs),
      String(compiled.billingStartMs),
      String(fields.length / 2),
      String(input.limits.length),
      ...fields,
      ...compiled.definitions.flat(),
    ],
  };
}

/** Layout version of settle.lua's arguments. */
export const SETTLE_LAYOUT_VERSION = 1;
/** Layout version of decide.lua's arguments. */
export const DECIDE_LAYOUT_VERSION = 2;

/**
 * Joins requests into one script call. Limit definitions are sent once per
 * batch and referred to by index. On Redis Cluster every request of a batch
 * must be of one shard (one slot); a single Redis takes any mix.
 * `KEYS = each request's keys`, `ARGV = [layout, n, d, ...definitions, ...each request]`, each request
 * being its head, its record TTL (`defaultRecordTtlMs` unless it has its own), then its definition indexes.
 */
export function compileBatch(requests: CompiledRequest[], defaultRecordTtlMs: number): { keys: string[]; args: string[] } {
  if (requests.length === 0) throw new ValidationError('INVALID_INPUT', 'a batch needs at least one request');
  const keys: string[] = [];
  const definitionArgs: string[] = [];
  const indexOf = new Map<string, number>();
  const requestArgs: string[] = [];
  for (const request of requests) {
    for (const key of request.keys) keys.push(key);
    for (const value of request.head) requestArgs.push(value);
    requestArgs.push(String(request.recordTtlMs ?? defaultRecordTtlMs), String(request.definitions.length));
    request.definitions.forEach((definition, position) => {
      const signature = request.signatures[position] as string;
      let index = indexOf.get(signature);
      if (index === undefined) {
        index = indexOf.size + 1;
        indexOf.set(signature, index);
        for (const value of definition) definitionArgs.push(value);
      }
      requestArgs.push(String(index));
    });
  }
  const args = [String(DECIDE_LAYOUT_VERSION), String(requests.length), String(indexOf.size)];
  for (const value of definitionArgs) args.push(value);
  for (const value of requestArgs) args.push(value);
  return { keys, args };
}
