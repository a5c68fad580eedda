import { describe, expect, it } from 'vitest';
import { parseUsageEvent } from '../../../src/metering/model/usage-event.js';
import { usageEventsOf } from '../../../src/metering/stream-entry.js';

const batch = (n: string, events: string): string[] => [
  'type',
  'usage.reserved.batch.v1',
  'time_ms',
  '1795000000123',
  'n',
  n,
  'events',
  events,
];

describe('usageEventsOf', () => {
  it('gives a one-event entry as it is', () => {
    const fields = ['id', 'r1', 'type', 'usage.settled.v1', 'tenant', 't1'];
    expect(usageEventsOf(fields)).toEqual({ isValid: true, events: [fields] });
  });

  it('gives each line of a batch entry as the fields of a one-event entry, with the warn field only when it has one', () => {
    const result = usageEventsOf(batch('2', 'r1 t1 k1 listProducts 3 7 1793577600000 \nr2 t1 k1 listProducts 0 7 1793577600000 month:80'));
    expect(result).toEqual({
      isValid: true,
      events: [
        [
          'id',
          'r1',
          'type',
          'usage.reserved.v1',
          'tenant',
          't1',
          'key',
          'k1',
          'op',
          'listProducts',
          'cost',
          '3',
          'pv',
          '7',
          'bp',
          '1793577600000',
          'time_ms',
          '1795000000123',
        ],
        [
          ...['id', 'r2', 'type', 'usage.reserved.v1', 'tenant', 't1', 'key', 'k1', 'op', 'listProducts', 'cost', '0', 'pv', '7'],
          ...['bp', '1793577600000', 'time_ms', '1795000000123', 'warn', 'month:80'],
        ],
      ],
    });
    // each parses as the event decide.lua appended one per entry before
    for (const fields of result.isValid ? result.events : []) expect(parseUsageEvent(fields).isValid).toBe(true);
  });

  it.each([
    ['a count that is not the number of lines', batch('3', 'r1 t1 k1 op 3 7 1 \nr2 t1 k1 op 3 7 1 ')],
    ['a count that is not a number', batch('x', 'r1 t1 k1 op 3 7 1 ')],
    ['a missing events field', ['type', 'usage.reserved.batch.v1', 'time_ms', '1', 'n', '1']],
    ['an extra field', [...batch('1', 'r1 t1 k1 op 3 7 1 '), 'x', 'y']],
    ['a line of 7 values', batch('1', 'r1 t1 k1 op 3 7 1')],
    ['a line of 9 values', batch('1', 'r1 t1 k1 op 3 7 1 w extra')],
  ])('refuses a batch entry with %s, whole', (_, fields) => {
    expect(usageEventsOf(fields).isValid).toBe(false);
  });
});
