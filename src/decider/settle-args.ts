/**
 * The KEYS and ARGV of `lua/settle.lua` (its header is the contract; this file
 * writes it): the decided request's own keys (so the same slot), the decided
 * and the actual cost, the billing periods, the settled event's fields, then
 * the limits' definitions exactly as decide.lua got them.
 */
import { ValidationError } from '../shared/index.js';
import { compileRequest, type CompileOptions } from './compile.js';
import type { SettleInput } from './ports.js';

/** Layout version of settle.lua's arguments: its `ARGV[1]`. */
export const SETTLE_LAYOUT_VERSION = 1;

/** The settled event's (name, value) pairs: the fields every usage event has, then `requested` and `actual`. */
function settledEventFields(input: SettleInput): string[] {
  return [
    'id',
    `${input.requestId}.settled`,
    'type',
    'usage.settled.v1',
    'tenant',
    input.tenant,
    'key',
    input.keyId,
    'op',
    input.operation,
    'requested',
    String(input.cost),
    'actual',
    String(input.actual),
    'pv',
    String(input.policyVersion),
  ];
}

/**
 * Compiles settle.lua's call. The periods are named from the decision's time, so a
 * settlement after a period boundary still reaches the keys the decision counted in.
 * @throws ValidationError `INVALID_INPUT` for a bad actual cost or decision time (and everything compileRequest checks)
 */
export function compileSettle(input: SettleInput, options: Pick<CompileOptions, 'shardCount'>): { keys: string[]; args: string[] } {
  if (!Number.isSafeInteger(input.actual) || input.actual < 0) {
    throw new ValidationError('INVALID_INPUT', `actual cost must be an integer in 0..2^53-1, got ${String(input.actual)}`);
  }
  if (!Number.isSafeInteger(input.decidedAtMs) || input.decidedAtMs < 0) {
    throw new ValidationError('INVALID_INPUT', 'decidedAtMs must be the decision time in ms');
  }
  const compiled = compileRequest(input, { shardCount: options.shardCount, localNowMs: input.decidedAtMs });
  const fields = settledEventFields(input);
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
