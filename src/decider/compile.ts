/**
 * Compiles one request and its limits into `lua/decide.lua` keys and arguments
 * (and the identical input of the pure model). Everything is validated here,
 * before Redis: ids, integer costs below 2^53, limit parameters. The ARGV
 * layout itself is `decide-args.ts`; what is per plan, not per request, is
 * `plan-cache.ts`.
 */
import { ValidationError, type EventId, type LimitId } from '../shared/index.js';
import { requestHeadArgs, type BatchMember } from './decide-args.js';
import {
  admittedKeyTail,
  bucketKeyHeadOf,
  parseIpHex,
  partOf,
  requestRecordKeyTail,
  shardOfPart,
  tenantKeyPrefix,
  usageStreamKey,
  type ShardId,
} from './keys.js';
import { ALG, type CompiledLimit, type ModelRequest } from './model/limits.js';
import { namingSkewMs, periodPairAt } from './model/period.js';
import { compiledPlan, periodVariants, type CompiledPlan } from './plan-cache.js';
import type { DecideInput, LimitMode, LimitSpec } from './ports.js';

/** How a request is compiled. */
export interface CompileOptions {
  /** Logical shards of the deployment, 1..16384. */
  shardCount: number;
  /** The local clock, used only to name periods; Redis `TIME` decides which applies. */
  localNowMs: number;
}

/** A request ready for the script: its keys and arguments, and the same values for the model. */
export interface CompiledRequest extends BatchMember {
  shard: ShardId;
  /** A whale tenant's part (undefined for an unsplit tenant). */
  part: number | undefined;
  /** The request's own record lifetime (undefined: the decider's default). */
  recordTtlMs: number | undefined;
  /** stream, record, admitted (current, next), then each limit's key(s). */
  readonly keys: string[];
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

/** Longest request record lifetime: 400 days. */
export const MAX_RECORD_TTL_MS = 400 * 86_400_000;

const OPERATION = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/** @throws ValidationError `INVALID_INPUT` for a bad cost, operation name, policy version or record TTL */
function checkRequest(input: DecideInput): void {
  if (!Number.isSafeInteger(input.cost) || input.cost < 0) {
    throw new ValidationError('INVALID_INPUT', `cost must be an integer in 0..2^53-1, got ${String(input.cost)}`);
  }
  if (!OPERATION.test(input.operation)) {
    throw new ValidationError('INVALID_INPUT', `invalid operation name ${JSON.stringify(input.operation.slice(0, 80))}`);
  }
  if (!Number.isSafeInteger(input.policyVersion) || input.policyVersion < 0) {
    throw new ValidationError('INVALID_INPUT', `policyVersion must be a non-negative integer`);
  }
  if (
    input.recordTtlMs !== undefined &&
    (!Number.isSafeInteger(input.recordTtlMs) || input.recordTtlMs < 1_000 || input.recordTtlMs > MAX_RECORD_TTL_MS)
  ) {
    throw new ValidationError('INVALID_INPUT', `recordTtlMs must be an integer in 1000..${MAX_RECORD_TTL_MS}`);
  }
}

/** Each limit's keys (key i is `keyHeads[i] + keyTails[i]`), definition, signature and model template, appended to `into`. */
interface LimitsOut {
  keyHeads: string[];
  keyTails: string[];
  definitions: string[][];
  signatures: string[];
  templates: CompiledLimit[];
}

/** What `appendLimits` needs besides the plan. */
interface AppendLimitsInput {
  input: DecideInput;
  plan: CompiledPlan;
  /** The tenant's `tenantKeyPrefix`. */
  prefix: string;
  localNowMs: number;
  into: LimitsOut;
}

/**
 * Appends every limit's key(s) and variant. Runs once per request: no closures, and at
 * most one key head per scope (the ip is parsed only when an ip-scoped limit applies).
 * @throws ValidationError `INVALID_INPUT` for an ip-scoped limit on a request without an address
 */
function appendLimits({ input, plan, prefix, localNowMs, into }: AppendLimitsInput): void {
  let keyHead: string | undefined;
  let ipHead: string | undefined;
  const asHard = plan.hasDefer && input.isDeferrable !== true;
  for (const limit of plan.limits) {
    let head: string;
    const scope = limit.spec.scope;
    if (scope === 'tenant') {
      head = prefix;
    } else if (scope === 'apiKey') {
      head = keyHead ??= bucketKeyHeadOf(prefix, { scope: 'apiKey', keyId: input.keyId });
    } else {
      if (input.clientIp === undefined) {
        throw new ValidationError('INVALID_INPUT', `limit ${limit.spec.id} is ip-scoped but the request has no client address`);
      }
      head = ipHead ??= bucketKeyHeadOf(prefix, { scope: 'ip', ipHex: parseIpHex(input.clientIp) });
    }
    const isHard = asHard && limit.spec.mode === 'defer';
    let chosen = isHard ? limit.asHard : limit.own;
    if (limit.alg === ALG.periodQuota) {
      const period = periodVariants(limit, localNowMs);
      into.keyHeads.push(head, head);
      into.keyTails.push(period.currentTail, period.nextTail);
      chosen = isHard ? period.asHard : period.own;
    } else {
      into.keyHeads.push(head);
      into.keyTails.push(limit.keyTail);
    }
    into.definitions.push(chosen.definition);
    into.signatures.push(chosen.signature);
    into.templates.push(chosen.limit);
  }
}

/**
 * Compiles a request for decide.lua and the model.
 * @throws ValidationError `INVALID_INPUT` / `INVALID_ID` for a bad cost, operation, address or limit
 */
export function compileRequest(input: DecideInput, options: CompileOptions): CompiledRequest {
  checkRequest(input);
  const subShards = input.subShards ?? 1;
  const part = partOf(input.requestId, subShards);
  const plan = compiledPlan(input.limits, { subShards, part });
  const shard = shardOfPart(input.tenant, options.shardCount, part);
  const billing = periodPairAt(input.billingPeriod, options.localNowMs - namingSkewMs(input.billingPeriod));
  const prefix = tenantKeyPrefix(shard, input.tenant, part);
  // the keys in two halves (no key string is built: the encoder writes both halves, `keys` joins them when read)
  const out: LimitsOut = {
    keyHeads: [usageStreamKey(shard), prefix, prefix, prefix],
    keyTails: ['', requestRecordKeyTail(input.requestId), admittedKeyTail(billing.current.startMs), admittedKeyTail(billing.next.startMs)],
    definitions: [],
    signatures: [],
    templates: [],
  };
  appendLimits({ input, plan, prefix, localNowMs: options.localNowMs, into: out });
  return new Compiled({
    shard,
    part,
    recordTtlMs: input.recordTtlMs,
    head: requestHeadArgs(input, billing),
    keyHeads: out.keyHeads,
    keyTails: out.keyTails,
    definitions: out.definitions,
    signatures: out.signatures,
    templates: out.templates,
    requestId: input.requestId,
    cost: input.cost,
    plan,
    billingStartMs: billing.current.startMs,
    billingEndMs: billing.current.endMs,
    billingNextEndMs: billing.next.endMs,
  });
}

/** Everything a `Compiled` holds. */
interface CompiledOptions extends LimitsOut {
  shard: ShardId;
  part: number | undefined;
  recordTtlMs: number | undefined;
  head: (string | number)[];
  requestId: EventId;
  cost: number;
  plan: CompiledPlan;
  billingStartMs: number;
  billingEndMs: number;
  billingNextEndMs: number;
}

/** CompiledRequest as a class: created once per request, so its shape is fixed and its model view lazy. */
class Compiled implements CompiledRequest {
  readonly shard: ShardId;
  readonly part: number | undefined;
  readonly recordTtlMs: number | undefined;
  readonly keyHeads: string[];
  readonly keyTails: string[];
  readonly head: (string | number)[];
  readonly definitions: string[][];
  readonly signatures: string[];
  readonly requestId: EventId;
  readonly limitIds: LimitId[];
  readonly limitKinds: LimitSpec['algorithm']['kind'][];
  readonly modes: LimitMode[];
  readonly billingStartMs: number;
  readonly billingEndMs: number;
  readonly billingNextEndMs: number;
  private readonly templates: CompiledLimit[];
  private readonly cost: number;
  private joinedKeys: string[] | undefined;

  constructor(options: CompiledOptions) {
    this.shard = options.shard;
    this.part = options.part;
    this.recordTtlMs = options.recordTtlMs;
    this.keyHeads = options.keyHeads;
    this.keyTails = options.keyTails;
    this.head = options.head;
    this.definitions = options.definitions;
    this.signatures = options.signatures;
    this.requestId = options.requestId;
    this.limitIds = options.plan.limitIds;
    this.limitKinds = options.plan.limitKinds;
    this.modes = options.plan.modes;
    this.billingStartMs = options.billingStartMs;
    this.billingEndMs = options.billingEndMs;
    this.billingNextEndMs = options.billingNextEndMs;
    this.templates = options.templates;
    this.cost = options.cost;
  }

  /** The keys, joined once when first read (the decider's own call writes the halves). */
  get keys(): string[] {
    if (this.joinedKeys === undefined) {
      const tails = this.keyTails;
      this.joinedKeys = this.keyHeads.map((head, index) => head + (tails[index] as string));
    }
    return this.joinedKeys;
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
    return { requestId: this.requestId, recordKey: this.keys[1] as string, cost: this.cost, limits };
  }
}
