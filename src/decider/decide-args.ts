/**
 * The ARGV layout of `lua/decide.lua` (its header is the contract; this file
 * writes it): layout version, request count, limit definitions once per batch,
 * then each request's head, record TTL and definition indexes. `settle.lua`
 * reads the same limit definitions (`settle-args.ts`).
 */
import { ValidationError } from '../shared/index.js';
import type { CompiledLimit } from './model/limits.js';
import type { PeriodPair } from './model/period.js';
import type { DecideInput } from './ports.js';

/** Layout version of decide.lua's arguments: its `ARGV[1]`. */
export const DECIDE_LAYOUT_VERSION = 3;

/** A limit's algorithm, mode and parameters as the script reads them (the model's limit without its keys). */
export type LimitDefinition = Omit<CompiledLimit, 'key' | 'nextKey'>;

/**
 * One limit definition of decide.lua's `ARGV[3]` block: `alg, mode, p1, p2, p3, p4,
 * nThresholds, thresholds...`, and when there are thresholds the limit id (named in the
 * usage event's `warn` field).
 */
export function limitDefinitionArgs(limit: LimitDefinition, limitId: string): string[] {
  const { alg, mode, p1, p2, p3, p4, thresholds } = limit;
  const definition = [
    String(alg),
    String(mode),
    String(p1),
    String(p2),
    String(p3),
    String(p4),
    String(thresholds.length),
    ...thresholds.map(String),
  ];
  if (thresholds.length > 0) definition.push(limitId);
  return definition;
}

/**
 * A request's head in decide.lua's per-request block: `requestId, cost, billingEndMs,
 * billingNextEndMs, tenant, keyId, operation, policyVersion, billingStartMs` (the record TTL
 * and the definition indexes follow, added per batch by `compileBatch`). `billing`: the billing
 * period the request counts in and the next one.
 */
export function requestHeadArgs(input: DecideInput, billing: PeriodPair): string[] {
  return [
    input.requestId,
    String(input.cost),
    String(billing.current.endMs),
    String(billing.next.endMs),
    input.tenant,
    input.keyId,
    input.operation,
    String(input.policyVersion),
    String(billing.current.startMs),
  ];
}

/** What `compileBatch` needs of a compiled request. */
export interface BatchMember {
  /** KEYS of the request, in decide.lua's per-request order. */
  keys: string[];
  /** See `requestHeadArgs`. */
  head: string[];
  /** The request's own record lifetime in ms (undefined: the batch default). */
  recordTtlMs: number | undefined;
  /** Each limit's `limitDefinitionArgs`. */
  definitions: string[][];
  /** Each definition joined: equal signatures are sent once per batch. */
  signatures: string[];
}

/**
 * Joins requests into one decide.lua call. Limit definitions are sent once per
 * batch and referred to by 1-based index. On Redis Cluster every request of a batch
 * must be of one shard (one slot); a single Redis takes any mix.
 * `KEYS = each request's keys`, `ARGV = [layout, n, d, ...definitions, ...each request]`, each request
 * being its head, its record TTL (`defaultRecordTtlMs` unless it has its own), its attempt token (`attempts[i]`,
 * the same when a call whose reply was lost is sent again; `-` when none), then its definition indexes.
 * @throws ValidationError `INVALID_INPUT` for an empty batch
 */
export function compileBatch(
  requests: BatchMember[],
  defaultRecordTtlMs: number,
  attempts?: readonly string[],
): { keys: string[]; args: string[] } {
  if (requests.length === 0) throw new ValidationError('INVALID_INPUT', 'a batch needs at least one request');
  const keys: string[] = [];
  const definitionArgs: string[] = [];
  const indexOf = new Map<string, number>();
  const requestArgs: string[] = [];
  requests.forEach((request, position) => {
    for (const key of request.keys) keys.push(key);
    for (const value of request.head) requestArgs.push(value);
    requestArgs.push(String(request.recordTtlMs ?? defaultRecordTtlMs), attempts?.[position] ?? '-', String(request.definitions.length));
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
  });
  const args = [String(DECIDE_LAYOUT_VERSION), String(requests.length), String(indexOf.size)];
  for (const value of definitionArgs) args.push(value);
  for (const value of requestArgs) args.push(value);
  return { keys, args };
}
