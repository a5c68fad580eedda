/**
 * The usage events of one `{s:<shard>}:usage:v1` entry. Two forms are read (`lua/decide.lua`'s header):
 * - one event per entry, its flat fields (`settle.lua`, `append-usage.lua`, corrections, and decide.lua before
 *   argument layout 6);
 * - `usage.reserved.batch.v1`: every event a decide.lua call admitted on that stream, `n` lines of 8 values
 *   (`id tenant key op cost pv bp warn`) sharing the entry's `time_ms`.
 * Each event comes out as the flat fields of a one-event entry, so `parseUsageEvent` judges both forms alike.
 * An entry whose batch does not read whole is one poison item (its fields as stored): nothing of it is guessed.
 */

/** The type of a batch entry. */
export const BATCH_ENTRY_TYPE = 'usage.reserved.batch.v1';

/** A batch entry's events, or why it does not read. */
export type EntryEvents = { isValid: true; events: string[][] } | { isValid: false; reason: string };

function field(fields: readonly string[], name: string): string | undefined {
  for (let index = 0; index + 1 < fields.length; index += 2) if (fields[index] === name) return fields[index + 1];
  return undefined;
}

/** The events of one entry (one for an entry of the one-event form, as it is). */
export function usageEventsOf(fields: readonly string[]): EntryEvents {
  if (field(fields, 'type') !== BATCH_ENTRY_TYPE) return { isValid: true, events: [fields as string[]] };
  const timeMs = field(fields, 'time_ms');
  const count = Number(field(fields, 'n'));
  const lines = field(fields, 'events')?.split('\n');
  if (fields.length !== 8 || timeMs === undefined || lines === undefined || !Number.isSafeInteger(count) || lines.length !== count) {
    return { isValid: false, reason: `malformed ${BATCH_ENTRY_TYPE} entry` };
  }
  const events: string[][] = [];
  for (const line of lines) {
    const [id = '', tenant = '', key = '', op = '', cost = '', pv = '', bp = '', warn = '', ...rest] = line.split(' ');
    if (rest.length > 0 || line.split(' ').length !== 8)
      return { isValid: false, reason: `malformed event in a ${BATCH_ENTRY_TYPE} entry` };
    const event = ['id', id, 'type', 'usage.reserved.v1', 'tenant', tenant, 'key', key, 'op', op, 'cost', cost, 'pv', pv, 'bp', bp];
    event.push('time_ms', timeMs);
    if (warn !== '') event.push('warn', warn);
    events.push(event);
  }
  return { isValid: true, events };
}
