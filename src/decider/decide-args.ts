/**
 * The argument of `lua/decide.lua` (its header is the contract; this file
 * writes it): one msgpack array holding the layout version, request count,
 * limit definitions once per batch, then each request's head, record TTL,
 * attempt token and definition indexes, encoded straight into one buffer.
 * `settle.lua` reads the same limit definitions (`settle-args.ts`).
 */
import { ValidationError } from '../shared/index.js';
import { PackWriter } from './msgpack.js';
import type { CompiledLimit } from './model/limits.js';
import type { PeriodPair } from './model/period.js';
import type { DecideInput } from './ports.js';

/** Layout version of decide.lua's arguments: its `ARGV[1]`. */
export const DECIDE_LAYOUT_VERSION = 6;

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
 * period the request counts in and the next one. The cost and the period bounds are integers
 * (the script computes with them: no string to parse), the rest strings (copied into the event).
 */
export function requestHeadArgs(input: DecideInput, billing: PeriodPair): (string | number)[] {
  return [
    input.requestId,
    input.cost,
    billing.current.endMs,
    billing.next.endMs,
    input.tenant,
    input.keyId,
    input.operation,
    String(input.policyVersion),
    billing.current.startMs,
  ];
}

/** What `compileBatch` needs of a compiled request. */
export interface BatchMember {
  /** KEYS of the request, in decide.lua's per-request order. */
  readonly keys: string[];
  /** The same keys in two halves: key i is `keyHeads[i] + keyTails[i]` (what the decider's call writes). */
  readonly keyHeads: readonly string[];
  readonly keyTails: readonly string[];
  /** See `requestHeadArgs`. */
  head: (string | number)[];
  /** The request's own record lifetime in ms (undefined: the batch default). */
  recordTtlMs: number | undefined;
  /** Each limit's `limitDefinitionArgs`. */
  definitions: string[][];
  /** Each definition joined: equal signatures are sent once per batch. */
  signatures: string[];
}

/** One writer for `compileBatch` (it runs to its end synchronously): its buffer is reused. */
const writer = new PackWriter();

/**
 * Joins requests into one decide.lua call. Limit definitions are sent once per
 * batch and referred to by 1-based index. On Redis Cluster every request of a batch
 * must be of one shard (one slot); a single Redis takes any mix.
 * `KEYS = each request's keys`; `ARGV = [packed]` (see `packBatch`). The decider itself writes the same
 * call straight into one command (`decide-command.ts`); this form is for tests and tools.
 * @throws ValidationError `INVALID_INPUT` for an empty batch
 */
export function compileBatch(
  requests: readonly BatchMember[],
  defaultRecordTtlMs: number,
  attempts?: readonly string[],
): { keys: string[]; args: [Buffer] } {
  if (requests.length === 0) throw new ValidationError('INVALID_INPUT', 'a batch needs at least one request');
  const keys: string[] = [];
  for (const request of requests) for (const key of request.keys) keys.push(key);
  writer.reset();
  packBatch(writer, requests, defaultRecordTtlMs, attempts);
  return { keys, args: [writer.toBuffer()] };
}

/**
 * Writes decide.lua's packed argument: one msgpack array `[layout, n, d, ...definitions, ...each request]`,
 * each request being its head, its record TTL (`defaultRecordTtlMs` unless it has its own), its attempt token
 * (`attempts[i]`, the same when a call whose reply was lost is sent again; `-` when none), its number of limits,
 * then its definition indexes (the TTL, the count and the indexes as integers). Equal definitions are written once.
 */
export function packBatch(
  out: PackWriter,
  requests: readonly BatchMember[],
  defaultRecordTtlMs: number,
  attempts: readonly string[] | undefined,
): void {
  const indexOf = new Map<string, number>();
  const distinct: string[][] = [];
  for (const request of requests) {
    const { signatures, definitions } = request;
    for (let position = 0; position < signatures.length; position += 1) {
      const signature = signatures[position] as string;
      if (indexOf.has(signature)) continue;
      indexOf.set(signature, indexOf.size + 1);
      distinct.push(definitions[position] as string[]);
    }
  }
  const array = out.arrayStart();
  out.uint(DECIDE_LAYOUT_VERSION);
  out.uint(requests.length);
  out.uint(distinct.length);
  let length = 3;
  for (const definition of distinct) {
    for (const value of definition) out.str(value);
    length += definition.length;
  }
  for (let position = 0; position < requests.length; position += 1) {
    const request = requests[position] as BatchMember;
    const { head, signatures } = request;
    for (let index = 0; index < head.length; index += 1) {
      const value = head[index] as string | number;
      if (typeof value === 'number') out.uint(value);
      else out.str(value);
    }
    out.uint(request.recordTtlMs ?? defaultRecordTtlMs);
    out.str(attempts?.[position] ?? '-');
    out.uint(signatures.length);
    for (let index = 0; index < signatures.length; index += 1) out.uint(indexOf.get(signatures[index] as string) as number);
    length += head.length + 3 + signatures.length;
  }
  out.arrayLength(array, length);
}
