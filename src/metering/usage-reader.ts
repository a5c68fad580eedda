/**
 * Reads of the ledger for the tenant usage API: hourly rollups (`model/rollups.ts`) over a time
 * range, and the entries behind a receipt. Every read names the tenant in its key, so nothing of
 * another tenant can be read (an id of theirs is simply not found). Reads only.
 */
import { QueryCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DependencyError, type TenantId } from '../shared/index.js';
import { batchGetConsistent, ledgerTableName } from './dynamo.js';
import { partitionKey, type AttributeMap } from './ledger-items.js';
import { OPERATION_SK_INFIX, ROLLUP_VERSION_SK, rollupPartition } from './model/rollups.js';

/** One hour of a tenant's ledger. */
export interface HourRollup {
  /** Start of the UTC hour, epoch ms. */
  hourStartMs: number;
  units: number;
  entries: number;
  byOperation: Record<string, number>;
}

/** A ledger entry as a receipt shows it. */
export interface ReceiptEntry {
  eventId: string;
  kind: string;
  amount: number;
  operation: string;
  /** The period partition holding it (ISO start). */
  periodStart: string;
  /** When the event happened (or, for entries written without it, was posted), epoch ms. */
  atMs: number;
  postedAtMs: number;
  /** Set when it was credited here because its own period was finalized. */
  lateOf: string | null;
  /** The API key of the request (entries written before keys were recorded: null). */
  keyId: string | null;
  /** Where it came from, `<stream>/<ms>-<seq>` (`/<index>` for an event of a batch entry; the pump's entries), or null. */
  source: string | null;
}

const HOUR_MS = 3_600_000;
/** Most months kept in memory (a year of ~380 tenants); past it the cache starts over. */
const MAX_CACHED_MONTHS = 5_000;

const wrap = (error: unknown): DependencyError =>
  new DependencyError('DYNAMODB_UNAVAILABLE', 'DynamoDB did not answer a usage read', { cause: error });

/** The UTC months (`YYYY-MM`) that [fromMs, toMs) touches. */
export function monthsBetween(fromMs: number, toMs: number): string[] {
  const months: string[] = [];
  const at = new Date(fromMs);
  let cursor = Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1);
  while (cursor < toMs) {
    months.push(new Date(cursor).toISOString().slice(0, 7));
    const date = new Date(cursor);
    cursor = Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1);
  }
  return months;
}

/** A month's hour items and operation items (sk `hour#<H>` and `hour#<H>#op#<operation>`) as hours, in time order. */
function decodeRollups(items: readonly AttributeMap[]): HourRollup[] {
  const hours = new Map<string, HourRollup>();
  const hourOf = (hour: string): HourRollup => {
    let rollup = hours.get(hour);
    if (rollup === undefined) {
      rollup = { hourStartMs: Date.parse(`${hour}:00:00.000Z`), units: 0, entries: 0, byOperation: {} };
      hours.set(hour, rollup);
    }
    return rollup;
  };
  for (const item of items) {
    const sk = (item['sk']?.S ?? '').slice('hour#'.length);
    const infix = sk.indexOf(OPERATION_SK_INFIX);
    const units = Number(item['units']?.N ?? '0');
    if (infix === -1) {
      const rollup = hourOf(sk);
      rollup.units = units;
      rollup.entries = Number(item['entries']?.N ?? '0');
    } else {
      hourOf(sk.slice(0, infix)).byOperation[sk.slice(infix + OPERATION_SK_INFIX.length)] = units;
    }
  }
  return [...hours.values()].sort((a, b) => a.hourStartMs - b.hourStartMs);
}

function decodeEntry(item: AttributeMap, periodStart: string): ReceiptEntry {
  const postedAtMs = Number(item['postedAtMs']?.N ?? '0');
  return {
    eventId: item['eventId']?.S ?? '',
    kind: item['kind']?.S ?? '',
    amount: Number(item['amount']?.N ?? '0'),
    operation: item['operation']?.S ?? '',
    periodStart,
    atMs: item['atMs']?.N === undefined ? postedAtMs : Number(item['atMs'].N),
    postedAtMs,
    lateOf: item['lateOf']?.S ?? null,
    keyId: item['keyId']?.S ?? null,
    source: item['source']?.S ?? null,
  };
}

/**
 * A stream entry id's `[ms, seq, index]` from a source `<stream>/<ms>-<seq>`, or `<stream>/<ms>-<seq>/<index>` for
 * the index-th event of a batch entry (one decide.lua call's events) ([∞, ∞, ∞] without one).
 */
function streamPosition(source: string | null): [number, number, number] {
  const match = source === null ? null : /\/(\d+)-(\d+)(?:\/(\d+))?$/.exec(source);
  if (match === null) return [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER];
  return [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)];
}

/**
 * The order the decider saw the events in: event time, then the stream's order (within one shard the
 * order of the script calls: requests decided in the same ms keep their order), then the order within one
 * call's batch entry, then reservation before settlement, then id.
 */
export function byEventOrder(a: ReceiptEntry, b: ReceiptEntry): number {
  if (a.atMs !== b.atMs) return a.atMs - b.atMs;
  const [aMs, aSeq, aIndex] = streamPosition(a.source);
  const [bMs, bSeq, bIndex] = streamPosition(b.source);
  if (aMs !== bMs) return aMs - bMs;
  if (aSeq !== bSeq) return aSeq - bSeq;
  if (aIndex !== bIndex) return aIndex - bIndex;
  const rank = (entry: ReceiptEntry): number => (entry.kind === 'usage.settled.v1' ? 1 : 0);
  return rank(a) - rank(b) || (a.eventId < b.eventId ? -1 : a.eventId > b.eventId ? 1 : 0);
}

/** Reads rollups and receipt entries of one tenant at a time. */
export class DynamoUsageReader {
  private readonly table: string;
  /** Hours of a tenant's month, under the month's version (see `hours`). */
  private readonly monthCache = new Map<string, { version: number; hours: HourRollup[] }>();

  constructor(
    private readonly client: DynamoDBClient,
    options: { tablePrefix: string },
  ) {
    this.table = ledgerTableName(options.tablePrefix);
  }

  /**
   * The tenant's hours with ledger entries in [fromMs, toMs) (hours cut by the range count whole), in
   * time order. Each UTC month's hours are kept in memory under the month's version (moved by every
   * ledger transaction that moves one of its hours) and read again only when it moved: one BatchGetItem
   * of versions, then one Query per month that changed (usually only the current one).
   * @throws DependencyError `DYNAMODB_UNAVAILABLE`
   */
  async hours(input: { tenant: TenantId; fromMs: number; toMs: number }): Promise<HourRollup[]> {
    const firstMs = input.fromMs - (input.fromMs % HOUR_MS);
    const months = monthsBetween(firstMs, input.toMs);
    // versions first, then hours: hours read after their version are at least that new (never cached as older)
    const versions = await this.monthVersions(input.tenant, months);
    const pages = await Promise.all(
      months.map(async (month) => {
        const cacheKey = `${input.tenant}#${month}`;
        const version = versions.get(month) ?? 0;
        const cached = this.monthCache.get(cacheKey);
        if (cached !== undefined && version > 0 && cached.version === version) return cached.hours;
        const hours = await this.readMonth(input.tenant, month);
        if (version > 0) {
          if (this.monthCache.size >= MAX_CACHED_MONTHS) this.monthCache.clear();
          this.monthCache.set(cacheKey, { version, hours });
        }
        return hours;
      }),
    );
    return pages.flat().filter((hour) => hour.hourStartMs >= firstMs && hour.hourStartMs < input.toMs);
  }

  private async monthVersions(tenant: TenantId, months: string[]): Promise<Map<string, number>> {
    const versions = new Map<string, number>();
    const keys: AttributeMap[] = months.map((month) => ({ pk: { S: rollupPartition(tenant, month) }, sk: { S: ROLLUP_VERSION_SK } }));
    for (const item of await batchGetConsistent(this.client, this.table, keys, 'a usage read')) {
      const pk = item['pk']?.S ?? '';
      versions.set(pk.slice(pk.lastIndexOf('#') + 1), Number(item['v']?.N ?? '0'));
    }
    return versions;
  }

  /** Every hour of one UTC month, in time order. */
  private async readMonth(tenant: TenantId, month: string): Promise<HourRollup[]> {
    const items: AttributeMap[] = [];
    let start: AttributeMap | undefined;
    do {
      try {
        const reply = await this.client.send(
          new QueryCommand({
            TableName: this.table,
            KeyConditionExpression: 'pk = :pk AND begins_with(sk, :hour)',
            ExpressionAttributeValues: { ':pk': { S: rollupPartition(tenant, month) }, ':hour': { S: 'hour#' } },
            ConsistentRead: true,
            ...(start === undefined ? {} : { ExclusiveStartKey: start }),
          }),
        );
        items.push(...(reply.Items ?? []));
        start = reply.LastEvaluatedKey;
      } catch (error) {
        throw wrap(error);
      }
    } while (start !== undefined);
    return decodeRollups(items);
  }

  /**
   * The ledger entries of `eventIds` in the tenant's period partitions `periodStarts` (an entry
   * credited late to a later period is found there when that period is listed too). Batch reads of 100 keys.
   * @throws DependencyError `DYNAMODB_UNAVAILABLE`
   */
  async entries(input: { tenant: TenantId; periodStarts: string[]; eventIds: string[] }): Promise<ReceiptEntry[]> {
    const keys = input.periodStarts.flatMap((periodStart) =>
      input.eventIds.map((eventId) => ({ pk: { S: partitionKey(input.tenant, periodStart) }, sk: { S: `entry#${eventId}` } })),
    );
    const found: ReceiptEntry[] = [];
    for (const item of await batchGetConsistent(this.client, this.table, keys, 'a usage read')) {
      const pk = item['pk']?.S ?? '';
      found.push(decodeEntry(item, pk.slice(pk.indexOf('#period#') + '#period#'.length)));
    }
    return found;
  }

  /**
   * Every entry of the tenant's period partitions `periodStarts` whose event happened in [fromMs, toMs),
   * in time order (a request's reservation before its settlement at the same ms). For a what-if replay.
   * @throws DependencyError `DYNAMODB_UNAVAILABLE`
   */
  async entriesBetween(input: { tenant: TenantId; periodStarts: string[]; fromMs: number; toMs: number }): Promise<ReceiptEntry[]> {
    const pages = await Promise.all(
      input.periodStarts.map(async (periodStart) => {
        const entries: ReceiptEntry[] = [];
        let start: AttributeMap | undefined;
        do {
          let reply;
          try {
            reply = await this.client.send(
              new QueryCommand({
                TableName: this.table,
                KeyConditionExpression: 'pk = :pk AND begins_with(sk, :entry)',
                ExpressionAttributeValues: { ':pk': { S: partitionKey(input.tenant, periodStart) }, ':entry': { S: 'entry#' } },
                ConsistentRead: true,
                ...(start === undefined ? {} : { ExclusiveStartKey: start }),
              }),
            );
          } catch (error) {
            throw wrap(error);
          }
          for (const item of reply.Items ?? []) {
            const entry = decodeEntry(item, periodStart);
            if (entry.atMs >= input.fromMs && entry.atMs < input.toMs) entries.push(entry);
          }
          start = reply.LastEvaluatedKey;
        } while (start !== undefined);
        return entries;
      }),
    );
    return pages.flat().sort(byEventOrder);
  }
}
