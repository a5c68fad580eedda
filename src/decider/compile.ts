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
import { admittedKey, bucketKey, parseIpHex, requestRecordKey, shardOf, usageStreamKey, type LimitSubject, type ShardId } from './keys.js';
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
}

export interface CompileOptions {
  shardCount: number;
  /** The local clock, used only to name periods; Redis `TIME` decides which applies. */
  localNowMs: number;
}

/** A request ready for the script: its keys and arguments, and the same values for the model. */
export interface CompiledRequest {
  shard: ShardId;
  keys: string[];
  args: string[];
  model: ModelRequest;
  limitIds: LimitId[];
  limitKinds: LimitSpec['algorithm']['kind'][];
  modes: LimitMode[];
  /** The limits' part of the arguments (shared with settle.lua). */
  limitArgs: string[];
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

/** How far the local clock may trail Redis when naming periods: periods are named from now − this. */
export const PERIOD_SKEW_ALLOWANCE_MS = 60_000;

const OPERATION = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

const MODE_CODE: Record<LimitMode, ModeCode> = { hard: MODE.hard, soft: MODE.soft, defer: MODE.defer, shadow: MODE.shadow };

function subjectOf(limit: LimitSpec, input: DecideInput): LimitSubject {
  switch (limit.scope) {
    case 'tenant':
      return { scope: 'tenant' };
    case 'apiKey':
      return { scope: 'apiKey', keyId: input.keyId };
    case 'ip':
      if (input.clientIp === undefined) {
        throw new ValidationError('INVALID_INPUT', `limit ${limit.id} is ip-scoped but the request has no client address`);
      }
      return { scope: 'ip', ipHex: parseIpHex(input.clientIp) };
  }
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
  validateLimits(input.limits);
  const shard = shardOf(input.tenant, options.shardCount);
  const namingNowMs = options.localNowMs - PERIOD_SKEW_ALLOWANCE_MS;
  const { current: billing, next: billingNext } = periodPairAt(input.billingPeriod, namingNowMs);

  const recordKey = requestRecordKey(shard, input.tenant, input.requestId);
  const keys = [recordKey, admittedKey(shard, input.tenant, billing.startMs), admittedKey(shard, input.tenant, billingNext.startMs)];
  const fields = eventFields(input, input.requestId, 'usage.reserved.v1', ['cost', String(input.cost)]);
  const limitArgs: string[] = [];
  const compiled: CompiledLimit[] = [];
  for (const limit of input.limits) {
    const subject = subjectOf(limit, input);
    const mode = limit.mode === 'defer' && input.isDeferrable !== true ? MODE.hard : MODE_CODE[limit.mode];
    const base = { shard, tenant: input.tenant, limitId: limit.id, subject };
    const alg = limit.algorithm;
    let entry: CompiledLimit;
    switch (alg.kind) {
      case 'token-bucket':
        entry = { alg: ALG.tokenBucket, mode, p1: alg.capacity, p2: alg.refillAmount, p3: alg.refillPeriodMs, p4: 0, thresholds: [], key: bucketKey(base) };
        break;
      case 'fixed-window':
        entry = { alg: ALG.fixedWindow, mode, p1: alg.limit, p2: alg.windowMs, p3: 0, p4: 0, thresholds: [], key: bucketKey(base) };
        break;
      case 'sliding-window':
        entry = { alg: ALG.slidingWindow, mode, p1: alg.limit, p2: alg.windowMs, p3: 0, p4: 0, thresholds: [], key: bucketKey(base) };
        break;
      case 'period-quota': {
        const { current: period, next } = periodPairAt(alg.period, namingNowMs);
        entry = {
          alg: ALG.periodQuota,
          mode,
          p1: alg.limit,
          p2: period.startMs,
          p3: period.endMs,
          p4: next.endMs,
          thresholds: [...alg.thresholdsPercent],
          key: bucketKey({ ...base, periodStartMs: period.startMs }),
          nextKey: bucketKey({ ...base, periodStartMs: next.startMs }),
        };
        break;
      }
      case 'concurrency':
        entry = { alg: ALG.concurrency, mode, p1: alg.slots, p2: alg.leaseTtlMs, p3: 0, p4: 0, thresholds: [], key: bucketKey(base) };
        break;
    }
    compiled.push(entry);
    keys.push(entry.key);
    if (entry.nextKey !== undefined) keys.push(entry.nextKey);
    limitArgs.push(
      String(entry.alg), String(entry.mode),
      String(entry.p1), String(entry.p2), String(entry.p3), String(entry.p4),
      String(entry.thresholds.length), ...entry.thresholds.map(String),
    );
  }
  const args = [
    input.requestId,
    String(input.cost),
    String(billing.endMs),
    String(billingNext.endMs),
    String(fields.length / 2),
    String(input.limits.length),
    ...fields,
    ...limitArgs,
  ];
  return {
    shard,
    keys,
    args,
    model: { requestId: input.requestId, recordKey, cost: input.cost, limits: compiled },
    limitIds: input.limits.map((limit) => limit.id),
    limitKinds: input.limits.map((limit) => limit.algorithm.kind),
    modes: input.limits.map((limit) => limit.mode),
    limitArgs,
    billingEndMs: billing.endMs,
    billingNextEndMs: billingNext.endMs,
  };
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
    keys: [usageStreamKey(compiled.shard), ...compiled.keys],
    args: [
      String(DECIDE_LAYOUT_VERSION),
      input.requestId,
      String(input.cost),
      String(input.actual),
      String(compiled.billingEndMs),
      String(compiled.billingNextEndMs),
      String(fields.length / 2),
      String(input.limits.length),
      ...fields,
      ...compiled.limitArgs,
    ],
  };
}

/** Layout version of the script's arguments. */
export const DECIDE_LAYOUT_VERSION = 1;

/**
 * Joins requests of ONE shard into one script call: `KEYS = [stream, ...each
 * request's keys]`, `ARGV = [layout, n, recordTtlMs, ...each request's args]`.
 */
export function compileBatch(requests: CompiledRequest[], recordTtlMs: number): { keys: string[]; args: string[] } {
  const first = requests[0];
  if (first === undefined) throw new ValidationError('INVALID_INPUT', 'a batch needs at least one request');
  const keys = [usageStreamKey(first.shard)];
  const args = [String(DECIDE_LAYOUT_VERSION), String(requests.length), String(recordTtlMs)];
  for (const request of requests) {
    if (request.shard !== first.shard) throw new ValidationError('INVALID_INPUT', 'a batch must stay within one shard');
    keys.push(...request.keys);
    args.push(...request.args);
  }
  return { keys, args };
}
