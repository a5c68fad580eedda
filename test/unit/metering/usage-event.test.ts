import { describe, expect, it } from 'vitest';
import { parseUsageEvent } from '../../../src/metering/index.js';
import { degradedEvent, reservedEvent, settledEvent } from '../../support/usage-events.js';

const BP = Date.UTC(2026, 10, 1);

function withField(fields: string[], name: string, value: string | undefined): string[] {
  const out: string[] = [];
  for (let index = 0; index < fields.length; index += 2) {
    if (fields[index] === name) {
      if (value !== undefined) out.push(name, value);
    } else out.push(fields[index] ?? '', fields[index + 1] ?? '');
  }
  return out;
}

function reasonOf(fields: string[]): string {
  const parsed = parseUsageEvent(fields);
  if (parsed.isValid) throw new Error('expected a poison event');
  return parsed.reason;
}

describe('parseUsageEvent', () => {
  it('reads a reserved event as +cost in its billing period', () => {
    const parsed = parseUsageEvent(reservedEvent({ requestId: 'req-1', tenant: 'acme', bp: BP, cost: 42 }).fields);
    expect(parsed).toEqual({
      isValid: true,
      event: {
        eventId: 'req-1',
        type: 'usage.reserved.v1',
        tenant: 'acme',
        keyId: 'key-1',
        operation: 'listProducts',
        policyVersion: 3,
        billingPeriodStartMs: BP,
        periodStart: '2026-11-01T00:00:00.000Z',
        timeMs: 1_795_000_000_000,
        amount: 42,
        warnings: [],
      },
    });
  });

  it('reads a settled event as -refund, and an overrun as a positive amount', () => {
    const refund = parseUsageEvent(settledEvent({ requestId: 'req-1', tenant: 'acme', bp: BP, requested: 10, actual: 3 }).fields);
    const overrun = parseUsageEvent(settledEvent({ requestId: 'req-2', tenant: 'acme', bp: BP, requested: 10, actual: 25 }).fields);
    expect(refund.isValid && refund.event.amount).toBe(-7);
    expect(overrun.isValid && overrun.event.amount).toBe(15);
    expect(refund.isValid && refund.event.eventId).toBe('req-1.settled');
  });

  it('reads a degraded event (spool field order) as +cost', () => {
    const parsed = parseUsageEvent(degradedEvent({ requestId: 'req-9', tenant: 'acme', bp: BP, cost: 5 }).fields);
    expect(parsed.isValid && parsed.event).toMatchObject({ type: 'usage.degraded.v1', amount: 5, operation: 'getProduct' });
  });

  it('reads a correction as its signed amount, with its reason and author, and refuses a bad one as poison', () => {
    const correction = (amount: string, reason = 'ticket 12', author = 'ops'): string[] =>
      ['type', 'correction.v1', 'id', 'correction.c-1', 'tenant', 'acme', 'key', 'correction', 'op', 'correction', 'pv', '0'].concat([
        'bp',
        String(BP),
        'amount',
        amount,
        'reason',
        reason,
        'author',
        author,
        'time_ms',
        '1795000000000',
      ]);
    expect(parseUsageEvent(correction('-20'))).toMatchObject({
      isValid: true,
      event: { type: 'correction.v1', eventId: 'correction.c-1', amount: -20, correction: { reason: 'ticket 12', author: 'ops' } },
    });
    expect(reasonOf(correction('0'))).toBe('a correction amount must not be 0');
    expect(reasonOf(correction('5', ''))).toBe('reason must be 1..500 characters without control characters');
    expect(reasonOf(correction('5', 'ok', 'a\nb'))).toBe('author must be 1..128 characters without control characters');
    expect(reasonOf(withField(correction('5'), 'reason', undefined))).toBe('missing field reason');
  });

  it.each([
    ['an unknown type', (f: string[]) => withField(f, 'type', 'usage.bogus.v1'), 'unknown type "usage.bogus.v1"'],
    ['a missing cost', (f: string[]) => withField(f, 'cost', undefined), 'missing field cost'],
    ['a float cost', (f: string[]) => withField(f, 'cost', '1.5'), 'cost is not an integer string in [0, 2^53): "1.5"'],
    [
      'a cost of 2^53',
      (f: string[]) => withField(f, 'cost', '9007199254740992'),
      'cost is not an integer string in [0, 2^53): "9007199254740992"',
    ],
    ['a leading zero', (f: string[]) => withField(f, 'bp', '01'), 'bp is not an integer string in [0, 2^53): "01"'],
    ['an exponent', (f: string[]) => withField(f, 'cost', '1e3'), 'cost is not an integer string in [0, 2^53): "1e3"'],
    ['a negative cost', (f: string[]) => withField(f, 'cost', '-4'), 'cost is not an integer string in [0, 2^53): "-4"'],
    ['a bad tenant id', (f: string[]) => withField(f, 'tenant', 'Acme#1'), 'tenant is not a valid id: "Acme#1"'],
    ['a bad event id', (f: string[]) => withField(f, 'id', 'req 1'), 'id is not a valid id: "req 1"'],
    ['a bad operation', (f: string[]) => withField(f, 'op', 'list-products'), 'op is not an operation name: "list-products"'],
    ['a period past year 9999', (f: string[]) => withField(f, 'bp', '253402300800000'), 'bp is beyond the last representable date'],
    ['a repeated field', (f: string[]) => [...f, 'cost', '1'], 'repeated field cost'],
  ])('rejects %s', (_name, change, reason) => {
    expect(reasonOf(change(reservedEvent({ requestId: 'req-1', tenant: 'acme', bp: BP, cost: 42 }).fields))).toBe(reason);
  });

  it('rejects a settled event whose refund is not requested - actual, or whose id lacks .settled', () => {
    const fields = settledEvent({ requestId: 'req-1', tenant: 'acme', bp: BP, requested: 10, actual: 3 }).fields;
    expect(reasonOf(withField(fields, 'refund', '6'))).toBe('refund 6 is not requested 10 - actual 3');
    expect(reasonOf(withField(fields, 'id', 'req-1'))).toBe('settled event id must be <requestId>.settled, got "req-1"');
    const reserved = reservedEvent({ requestId: 'req-1.settled', tenant: 'acme', bp: BP, cost: 1 }).fields;
    expect(reasonOf(reserved)).toBe('usage.reserved.v1 event id must not end with .settled');
  });

  it('reads the quota thresholds a request crossed from `warn`, and rejects a malformed one as poison', () => {
    const fields = [...reservedEvent({ requestId: 'req-w', tenant: 'acme', bp: BP, cost: 1 }).fields, 'warn', 'month:80,day:100'];
    const parsed = parseUsageEvent(fields);
    expect(parsed.isValid && parsed.event.warnings).toEqual([
      { limitId: 'month', percent: 80 },
      { limitId: 'day', percent: 100 },
    ]);
    expect(reasonOf(withField(fields, 'warn', 'month:eighty'))).toBe('warn item is not limitId:percent: "month:eighty"');
    expect(reasonOf(withField(fields, 'warn', 'Month:80'))).toBe('warn item is not limitId:percent: "Month:80"');
    expect(reasonOf(withField(fields, 'warn', ''))).toBe('warn must name 1..64 thresholds: ""');
  });
});
