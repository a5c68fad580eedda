import { describe, expect, it } from 'vitest';
import { byEventOrder, type ReceiptEntry } from '../../../src/metering/usage-reader.js';

const entry = (eventId: string, source: string | null, kind = 'usage.reserved.v1', atMs = 1_000): ReceiptEntry => ({
  eventId,
  kind,
  amount: 1,
  operation: 'op',
  periodStart: '2026-12-01T00:00:00.000Z',
  atMs,
  postedAtMs: atMs,
  lateOf: null,
  keyId: null,
  source,
});

describe('byEventOrder', () => {
  it('keeps the order of one call’s batch entry by event index, whatever the ids', () => {
    const stream = '{s:5}:usage:v1';
    const entries = [
      entry('zz', `${stream}/1000-0/2`),
      entry('aa', `${stream}/1000-0/10`),
      entry('mm', `${stream}/1000-0/0`),
      entry('bb', `${stream}/999-3`),
      entry('cc', `${stream}/1000-1`),
    ];
    expect([...entries].sort(byEventOrder).map((item) => item.eventId)).toEqual(['bb', 'mm', 'zz', 'aa', 'cc']);
  });

  it('puts event time first, then a reservation before its settlement, then the id (entries without a source last in a tie)', () => {
    const entries = [
      entry('b', null, 'usage.settled.v1'),
      entry('a', null),
      entry('c', '{s:1}:usage:v1/5-0', 'usage.reserved.v1', 2_000),
      entry('d', '{s:1}:usage:v1/5-0/0'),
    ];
    expect([...entries].sort(byEventOrder).map((item) => item.eventId)).toEqual(['d', 'a', 'b', 'c']);
  });
});
