/**
 * Usage events as tests read them from `{s:<shard>}:usage:v1`: a decide.lua call appends one entry holding all of its
 * events (`src/metering/stream-entry.ts`); these give one `[entryId, fields]` per event, its fields those of a
 * one-event entry, in stream order.
 */
import { usageEventsOf } from '../../src/metering/stream-entry.js';

/** XRANGE entries expanded to one `[entryId, fields]` per usage event. @throws Error for an entry that does not read */
export function streamEvents(entries: readonly [string, string[]][]): [string, string[]][] {
  return entries.flatMap(([id, fields]) => {
    const expanded = usageEventsOf(fields);
    if (!expanded.isValid) throw new Error(`stream entry ${id}: ${expanded.reason}`);
    return expanded.events.map((event): [string, string[]] => [id, event]);
  });
}
