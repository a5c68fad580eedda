/**
 * Usage events as the decider writes them to `{s:<shard>}:usage:v1` (flat
 * string fields), parsed into ledger lines. Pure: no I/O. An entry that does
 * not parse is poison: the pump dead-letters it with the reason returned here
 * and never guesses a ledger amount for it.
 *
 * Ledger amount of each event type (the decider moves the tenant's admitted
 * counter of period `bp` by the same amount, DESIGN §6):
 *   usage.reserved.v1  +cost
 *   usage.settled.v1   −refund  (refund = requested − actual, negative for an overrun)
 *   usage.degraded.v1  +cost
 *   correction.v1      +amount (signed: a debit > 0, a credit < 0), with `reason` and `author`; written by
 *                      `applyCorrection` (src/billing/corrections.ts), never by the decider: its `key` is
 *                      `correction`, its `op` `correction`, its `pv` 0
 */
import {
  parseEventId,
  parseKeyId,
  parseLimitId,
  parseTenantId,
  type EventId,
  type KeyId,
  type LimitId,
  type TenantId,
} from '../../shared/index.js';

export const USAGE_EVENT_TYPES = ['usage.reserved.v1', 'usage.settled.v1', 'usage.degraded.v1', 'correction.v1'] as const;
export type UsageEventType = (typeof USAGE_EVENT_TYPES)[number];

/** A quota threshold a reserved event crossed (the decider's `warn` field, `limitId:percent[,…]`). */
export interface ThresholdCrossing {
  limitId: LimitId;
  /** Percent of the period quota, an integer 1..1000. */
  percent: number;
}

/** A validated usage event, reduced to what the ledger records. */
export interface UsageEvent {
  eventId: EventId;
  type: UsageEventType;
  tenant: TenantId;
  keyId: KeyId;
  operation: string;
  policyVersion: number;
  /** Start of the billing period the decider counted the event in, epoch ms. */
  billingPeriodStartMs: number;
  /** The same, ISO-8601 UTC with ms (the ledger's period key). */
  periodStart: string;
  /** Redis TIME when the event was appended, epoch ms. */
  timeMs: number;
  /** Signed cost units the event moves the balance by (a safe integer). */
  amount: number;
  /** Quota thresholds this request crossed (empty for most events). */
  warnings: ThresholdCrossing[];
  /** `correction.v1` only: why and by whom. */
  correction?: { reason: string; author: string };
}

/** Longest reason and author of a correction, in characters. */
export const MAX_CORRECTION_REASON_CHARS = 500;
export const MAX_CORRECTION_AUTHOR_CHARS = 128;

/** Why `reason`/`author` cannot go on a correction (undefined when they can): 1..max printable characters. */
export function correctionTextProblem(name: 'reason' | 'author', value: unknown): string | undefined {
  const max = name === 'reason' ? MAX_CORRECTION_REASON_CHARS : MAX_CORRECTION_AUTHOR_CHARS;
  // eslint-disable-next-line no-control-regex
  if (typeof value !== 'string' || value.trim() === '' || value.length > max || /[\u0000-\u001f\u007f]/.test(value)) {
    return `${name} must be 1..${max} characters without control characters`;
  }
  return undefined;
}

export type ParsedUsageEvent = { isValid: true; event: UsageEvent } | { isValid: false; reason: string };

const UNSIGNED = /^(0|[1-9][0-9]{0,15})$/;
const SIGNED = /^(0|-?[1-9][0-9]{0,15})$/;
const OPERATION = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
/** Last epoch ms with a four-digit year (9999-12-31T23:59:59.999Z): the ledger period key format. */
const MAX_DATE_MS = 253_402_300_799_999;
const SETTLED_SUFFIX = '.settled';

class PoisonField extends Error {}

function field(fields: ReadonlyMap<string, string>, name: string): string {
  const value = fields.get(name);
  if (value === undefined) throw new PoisonField(`missing field ${name}`);
  return value;
}

/** An exact decimal integer string in [0, 2^53): no sign, no leading zeros, no exponent. */
function unsigned(fields: ReadonlyMap<string, string>, name: string): number {
  const raw = field(fields, name);
  const value = Number(raw);
  if (!UNSIGNED.test(raw) || !Number.isSafeInteger(value)) {
    throw new PoisonField(`${name} is not an integer string in [0, 2^53): ${JSON.stringify(raw.slice(0, 40))}`);
  }
  return value;
}

function signed(fields: ReadonlyMap<string, string>, name: string): number {
  const raw = field(fields, name);
  const value = Number(raw);
  if (!SIGNED.test(raw) || !Number.isSafeInteger(value)) {
    throw new PoisonField(`${name} is not an integer string in (-2^53, 2^53): ${JSON.stringify(raw.slice(0, 40))}`);
  }
  return value;
}

function id<T>(parse: (raw: unknown) => T, fields: ReadonlyMap<string, string>, name: string): T {
  const raw = field(fields, name);
  try {
    return parse(raw);
  } catch {
    throw new PoisonField(`${name} is not a valid id: ${JSON.stringify(raw.slice(0, 80))}`);
  }
}

const PERCENT = /^[1-9][0-9]{0,3}$/;

/** `limitId:percent[,limitId:percent]` (commas or spaces); absent: none. Anything else is poison. */
function parseWarnings(raw: string | undefined): ThresholdCrossing[] {
  if (raw === undefined) return [];
  const items = raw.split(/[ ,]+/).filter((item) => item !== '');
  if (items.length === 0 || items.length > 64)
    throw new PoisonField(`warn must name 1..64 thresholds: ${JSON.stringify(raw.slice(0, 80))}`);
  return items.map((item) => {
    const colon = item.lastIndexOf(':');
    const percent = item.slice(colon + 1);
    let limitId: LimitId;
    try {
      limitId = parseLimitId(item.slice(0, colon));
    } catch {
      throw new PoisonField(`warn item is not limitId:percent: ${JSON.stringify(item.slice(0, 80))}`);
    }
    if (colon < 1 || !PERCENT.test(percent) || Number(percent) > 1000) {
      throw new PoisonField(`warn item is not limitId:percent: ${JSON.stringify(item.slice(0, 80))}`);
    }
    return { limitId, percent: Number(percent) };
  });
}

function isUsageEventType(value: string): value is UsageEventType {
  return (USAGE_EVENT_TYPES as readonly string[]).includes(value);
}

/** Flat `[name, value, name, value, …]` stream fields into a map; a repeated name is poison. */
function toMap(flat: readonly string[]): Map<string, string> {
  if (flat.length % 2 !== 0) throw new PoisonField('odd number of field items');
  const fields = new Map<string, string>();
  for (let index = 0; index < flat.length; index += 2) {
    const name = flat[index] ?? '';
    if (fields.has(name)) throw new PoisonField(`repeated field ${name}`);
    fields.set(name, flat[index + 1] ?? '');
  }
  return fields;
}

function parseFields(flat: readonly string[]): UsageEvent {
  const fields = toMap(flat);
  const type = field(fields, 'type');
  if (!isUsageEventType(type)) throw new PoisonField(`unknown type ${JSON.stringify(type.slice(0, 64))}`);
  const eventId = id(parseEventId, fields, 'id');
  if (type === 'usage.settled.v1') {
    const requestId = eventId.endsWith(SETTLED_SUFFIX) ? eventId.slice(0, -SETTLED_SUFFIX.length) : '';
    try {
      parseEventId(requestId);
    } catch {
      throw new PoisonField(`settled event id must be <requestId>${SETTLED_SUFFIX}, got ${JSON.stringify(eventId)}`);
    }
  } else if (eventId.endsWith(SETTLED_SUFFIX)) {
    throw new PoisonField(`${type} event id must not end with ${SETTLED_SUFFIX}`);
  }
  const tenant = id(parseTenantId, fields, 'tenant');
  const keyId = id(parseKeyId, fields, 'key');
  const operation = field(fields, 'op');
  if (!OPERATION.test(operation)) throw new PoisonField(`op is not an operation name: ${JSON.stringify(operation.slice(0, 80))}`);
  const policyVersion = unsigned(fields, 'pv');
  const billingPeriodStartMs = unsigned(fields, 'bp');
  if (billingPeriodStartMs > MAX_DATE_MS) throw new PoisonField('bp is beyond the last representable date');
  const timeMs = unsigned(fields, 'time_ms');
  let amount: number;
  let correction: UsageEvent['correction'];
  if (type === 'correction.v1') {
    amount = signed(fields, 'amount');
    if (amount === 0) throw new PoisonField('a correction amount must not be 0');
    const reason = field(fields, 'reason');
    const author = field(fields, 'author');
    const problem = correctionTextProblem('reason', reason) ?? correctionTextProblem('author', author);
    if (problem !== undefined) throw new PoisonField(problem);
    correction = { reason, author };
  } else if (type === 'usage.settled.v1') {
    const requested = unsigned(fields, 'requested');
    const actual = unsigned(fields, 'actual');
    const refund = signed(fields, 'refund');
    if (refund !== requested - actual) {
      throw new PoisonField(`refund ${refund} is not requested ${requested} - actual ${actual}`);
    }
    amount = -refund;
  } else {
    amount = unsigned(fields, 'cost');
  }
  return {
    eventId,
    type,
    tenant,
    keyId,
    operation,
    policyVersion,
    billingPeriodStartMs,
    periodStart: new Date(billingPeriodStartMs).toISOString(),
    timeMs,
    amount,
    warnings: parseWarnings(fields.get('warn')),
    ...(correction === undefined ? {} : { correction }),
  };
}

/**
 * Parses one stream entry's fields. Unknown extra fields are ignored (a newer
 * producer may add some); every field the ledger needs must be present and exact.
 */
export function parseUsageEvent(flat: readonly string[]): ParsedUsageEvent {
  try {
    return { isValid: true, event: parseFields(flat) };
  } catch (error) {
    if (error instanceof PoisonField) return { isValid: false, reason: error.message };
    throw error;
  }
}
