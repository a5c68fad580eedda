/**
 * The usage API's `receipts(from, to)`: the caller's receipts whose event time is in [from, to), newest first, a page
 * at a time, from the ledger. The ledger keeps one partition per tenant and billing period
 * (`tenant#<tenant>#period#<periodStartIso>`, src/metering/ledger-items.ts); its `entries-by-time` index (hash `pk`,
 * range `atMs`, infra/tables.ts) orders a partition's entries by event time, so a page is a query of the partitions
 * of the periods the range overlaps, newest first, and one consistent batch read of the page's settlements
 * (`entry#<id>.settled`) — never a scan. Partitions are the caller's own: a crafted cursor names a time and an id
 * inside them, nothing else.
 *
 * What it lists: each reservation, degraded-mode admission and correction (the events `receipt(id)` answers), with
 * its settlement folded in. The index is eventually consistent (an entry ledgered a moment ago may show a moment
 * later). A late entry (credited to a later period than its own, `lateOf`) is listed only when the range overlaps
 * the period it was credited to.
 */
import { QueryCommand, type AttributeValue, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { periodAt, type PeriodSpec } from '../../decider/index.js';
import { DependencyError, ValidationError } from '../../shared/index.js';
import { batchGetConsistent } from '../../metering/index.js';

export const ENTRIES_BY_TIME_INDEX = 'entries-by-time';
export const MAX_RECEIPTS_PAGE = 100;
/** Longest range, ms (as `usageSeries`). */
const MAX_RANGE_MS = 366 * 86_400_000;
/** Most billing-period partitions one range may cover (short test periods would otherwise make thousands). */
const MAX_PARTITIONS = 400;
const SETTLED = 'usage.settled.v1';

type Item = Record<string, AttributeValue>;

/** A ledger entry as a receipt (`receipt(id)` and `receipts`). */
export interface Receipt {
  id: string;
  kind: string;
  operation: string;
  /** Units the request was charged: its reservation plus its settlement (refunds are negative). */
  units: number;
  reservedUnits: number;
  atMs: number;
  periodStart: string;
  lateOf: string | null;
  settlement: { units: number; atMs: number } | null;
}

export interface ReceiptPage {
  items: Receipt[];
  cursor: string | null;
}

const wrap = (error: unknown): DependencyError =>
  new DependencyError('DYNAMODB_UNAVAILABLE', 'DynamoDB did not answer the receipt search', { cause: error });

const iso = (ms: number): string => new Date(ms).toISOString();

interface Cursor {
  periodStartMs: number;
  atMs: number;
  eventId: string;
}

const encodeCursor = (cursor: Cursor): string =>
  Buffer.from(JSON.stringify([cursor.periodStartMs, cursor.atMs, cursor.eventId])).toString('base64url');

/** @throws ValidationError for anything this API did not hand out */
function decodeCursor(raw: string): Cursor {
  try {
    const value = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as unknown;
    if (
      Array.isArray(value) &&
      value.length === 3 &&
      Number.isSafeInteger(value[0]) &&
      Number.isSafeInteger(value[1]) &&
      typeof value[2] === 'string' &&
      /^[A-Za-z0-9._:-]{1,200}$/.test(value[2])
    )
      return { periodStartMs: value[0] as number, atMs: value[1] as number, eventId: value[2] };
  } catch {
    // answered below
  }
  throw new ValidationError('INVALID_INPUT', 'after is not a cursor of this search');
}

/** The [from, to) of the arguments. @throws ValidationError */
export function receiptRange(from: string, to: string): { fromMs: number; toMs: number } {
  const fromMs = Date.parse(from);
  const toMs = Date.parse(to);
  if (Number.isNaN(fromMs) || Number.isNaN(toMs)) throw new ValidationError('INVALID_INPUT', 'from and to must be ISO-8601 instants');
  if (toMs <= fromMs) throw new ValidationError('INVALID_INPUT', 'to must be after from');
  if (toMs - fromMs > MAX_RANGE_MS) throw new ValidationError('INVALID_INPUT', 'the range is at most 366 days');
  return { fromMs, toMs };
}

/** Starts of the billing periods overlapping [fromMs, toMs), newest first. @throws ValidationError (too many) */
function periodsOverlapping(spec: PeriodSpec, fromMs: number, toMs: number): number[] {
  const starts: number[] = [];
  for (let period = periodAt(spec, toMs - 1); period.endMs > fromMs; period = periodAt(spec, period.startMs - 1)) {
    starts.push(period.startMs);
    if (starts.length > MAX_PARTITIONS) throw new ValidationError('INVALID_INPUT', 'the range covers too many billing periods; narrow it');
  }
  return starts;
}

export class DynamoReceiptSearch {
  private readonly table: string;

  constructor(
    private readonly client: DynamoDBClient,
    options: { tablePrefix: string },
  ) {
    this.table = `${options.tablePrefix}ledger`;
  }

  /** @throws ValidationError (range, first, after), DependencyError `DYNAMODB_UNAVAILABLE` */
  async search(input: {
    tenant: string;
    billingPeriod: PeriodSpec;
    fromMs: number;
    toMs: number;
    first: number;
    after: string | null;
  }): Promise<ReceiptPage> {
    if (!Number.isInteger(input.first) || input.first < 1 || input.first > MAX_RECEIPTS_PAGE)
      throw new ValidationError('INVALID_INPUT', `first must be an integer in 1..${MAX_RECEIPTS_PAGE}`);
    const cursor = input.after === null ? undefined : decodeCursor(input.after);
    const periods = periodsOverlapping(input.billingPeriod, input.fromMs, input.toMs).filter(
      (startMs) => cursor === undefined || startMs <= cursor.periodStartMs,
    );
    const found: { item: Item; periodStartMs: number }[] = [];
    let hasMore = false;
    for (const periodStartMs of periods) {
      const start = cursor !== undefined && cursor.periodStartMs === periodStartMs ? cursor : undefined;
      hasMore = await this.queryPartition({ ...input, periodStartMs, start, found });
      if (hasMore) break;
    }
    const page = found.slice(0, input.first);
    const receipts = await this.withSettlements(input.tenant, page);
    const last = page.at(-1);
    return {
      items: receipts,
      cursor:
        hasMore && last !== undefined
          ? encodeCursor({
              periodStartMs: last.periodStartMs,
              atMs: Number(last.item['atMs']?.N ?? '0'),
              eventId: last.item['eventId']?.S ?? '',
            })
          : null,
    };
  }

  /** Adds the partition's entries in range (newest first) to `found`; true once more than `first` are found. */
  private async queryPartition(input: {
    tenant: string;
    fromMs: number;
    toMs: number;
    first: number;
    periodStartMs: number;
    start: Cursor | undefined;
    found: { item: Item; periodStartMs: number }[];
  }): Promise<boolean> {
    const pk = `tenant#${input.tenant}#period#${iso(input.periodStartMs)}`;
    let exclusive: Item | undefined =
      input.start === undefined
        ? undefined
        : { pk: { S: pk }, sk: { S: `entry#${input.start.eventId}` }, atMs: { N: String(input.start.atMs) } };
    do {
      let reply;
      try {
        reply = await this.client.send(
          new QueryCommand({
            TableName: this.table,
            IndexName: ENTRIES_BY_TIME_INDEX,
            KeyConditionExpression: 'pk = :pk AND atMs BETWEEN :from AND :to',
            FilterExpression: '#k <> :settled',
            ExpressionAttributeNames: { '#k': 'kind' },
            ExpressionAttributeValues: {
              ':pk': { S: pk },
              ':from': { N: String(input.fromMs) },
              ':to': { N: String(input.toMs - 1) },
              ':settled': { S: SETTLED },
            },
            ScanIndexForward: false,
            Limit: Math.max(10, input.first + 1 - input.found.length),
            ...(exclusive === undefined ? {} : { ExclusiveStartKey: exclusive }),
          }),
        );
      } catch (error) {
        throw wrap(error);
      }
      for (const item of reply.Items ?? []) {
        if (!(item['sk']?.S ?? '').startsWith('entry#')) continue;
        input.found.push({ item, periodStartMs: input.periodStartMs });
        if (input.found.length > input.first) return true;
      }
      exclusive = reply.LastEvaluatedKey;
    } while (exclusive !== undefined);
    return false;
  }

  private async withSettlements(tenant: string, page: { item: Item; periodStartMs: number }[]): Promise<Receipt[]> {
    const settled = new Map<string, Item>();
    const keys: Item[] = page.map(({ item, periodStartMs }) => ({
      pk: { S: `tenant#${tenant}#period#${iso(periodStartMs)}` },
      sk: { S: `entry#${item['eventId']?.S ?? ''}.settled` },
    }));
    for (const item of await batchGetConsistent(this.client, this.table, keys, 'the receipt search')) {
      settled.set(`${item['pk']?.S ?? ''}\n${item['sk']?.S ?? ''}`, item);
    }
    return page.map(({ item, periodStartMs }) => {
      const id = item['eventId']?.S ?? '';
      const amount = Number(item['amount']?.N ?? '0');
      const settlement = settled.get(`tenant#${tenant}#period#${iso(periodStartMs)}\nentry#${id}.settled`);
      const settledUnits = settlement === undefined ? undefined : Number(settlement['amount']?.N ?? '0');
      const settledAtMs = settlement === undefined ? 0 : Number(settlement['atMs']?.N ?? settlement['postedAtMs']?.N ?? '0');
      return {
        id,
        kind: item['kind']?.S ?? '',
        operation: item['operation']?.S ?? '',
        units: amount + (settledUnits ?? 0),
        reservedUnits: amount,
        atMs: Number(item['atMs']?.N ?? '0'),
        periodStart: iso(periodStartMs),
        lateOf: item['lateOf']?.S ?? null,
        settlement: settledUnits === undefined ? null : { units: settledUnits, atMs: settledAtMs },
      };
    });
  }
}
