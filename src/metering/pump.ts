/**
 * The usage pump's unit of work: one batch of one shard's usage stream into
 * the ledger, exactly once. Called by the `meter/<shard>` workflow's activity.
 *
 * Order of effects, and why a crash anywhere is safe:
 *   1. XAUTOCLAIM entries pending longer than `claimMinIdleMs` (delivered
 *      before a crash, never acknowledged); if none, XREADGROUP new ones.
 *   2. Parse each entry; post the good ones to the ledger (idempotent by
 *      event id, balances in the same transactions).         -> crash: entries stay pending, re-posting them moves nothing
 *   3. Hand the quota thresholds the ledgered events crossed to the
 *      WarningSink (the account workflows).                   -> crash: handed again after the retry; the sink dedupes
 *   4. XACK the poison ones and dead-letter each one XACK took, in one script
 *                                                              -> atomic: never lost, never dead-lettered twice
 *   5. XACK the ledgered ones.                                 -> only after DynamoDB and the sink hold them
 *   6. XTRIM MINID below the oldest entry any group still needs.
 * The consumer group is the cursor of record; the workflow's cursor is only
 * where the reclaim scan continues.
 */
import { DependencyError, InvariantError, type TenantId } from '../shared/index.js';
import { redisErrorPrefix, usageStreamKey, type DeciderRedis, type ShardId } from '../decider/index.js';
import { deadLetterStreamKey } from './keys.js';
import type { LedgerEntry, LedgerStore } from './ledger-items.js';
import { parseUsageEvent, type ThresholdCrossing } from './model/usage-event.js';
import { usageEventsOf } from './stream-entry.js';
import { deadLetter, type PoisonEntry } from './dead-letter.js';

/** A quota threshold crossed by one admitted request, in the billing period the request counts in. */
export interface CrossedThreshold extends ThresholdCrossing {
  tenant: TenantId;
  /** Start of the billing period (`bp`), epoch ms. */
  periodStartMs: number;
  /** The usage event that crossed it. */
  eventId: string;
}

/**
 * Port: receives the thresholds crossed by a batch, after the ledger holds
 * the batch and before it is acknowledged. A failure fails the batch (it is
 * retried, nothing acknowledged), so the sink sees every crossing at least
 * once and must dedupe (the account workflow does, per period, limit and percent).
 */
export interface WarningSink {
  notify(crossings: readonly CrossedThreshold[]): Promise<void>;
}

export interface UsagePumpOptions {
  /** Where crossed quota thresholds go (the account workflows). @default none: thresholds are dropped */
  warningSink?: WarningSink;
  /** Consumer group on every usage stream. @default 'meter' */
  group?: string;
  /** Consumer name; one pump per shard, so one name. @default 'pump' */
  consumer?: string;
  /** Most entries read (or reclaimed) per batch. @default 500 */
  batchSize?: number;
  /** An entry pending at least this long (ms) is taken back from a crashed attempt. @default 60000 */
  claimMinIdleMs?: number;
}

const DEFAULTS: Required<Omit<UsagePumpOptions, 'warningSink'>> = {
  group: 'meter',
  consumer: 'pump',
  batchSize: 500,
  claimMinIdleMs: 60_000,
};

/** Points between the effects of a batch (for heartbeats and fault injection in tests). */
export type PumpStage = 'read' | 'ledger-written' | 'warnings-handed' | 'dead-lettered' | 'acked' | 'trimmed';

export interface PumpBatchInput {
  shard: ShardId;
  /** Where the reclaim scan continues (`0-0` starts over). */
  claimCursor: string;
  onStage?: (stage: PumpStage) => void;
  /** Called while a long step makes progress (after each DynamoDB transaction), for heartbeats. */
  onProgress?: () => void;
}

/** What one batch did. JSON-safe. */
export interface PumpBatchResult {
  /** Reclaim scan position for the next batch. */
  claimCursor: string;
  /** Entries handled in this batch (reclaimed + newly read). */
  read: number;
  reclaimed: number;
  /** Ledger entries written now. */
  posted: number;
  /** Entries already in the ledger (a replay after a crash, or a duplicated event). */
  duplicates: number;
  deadLettered: number;
  /** Entries acknowledged (ledgered, duplicate, dead-lettered, or deleted before being handled). */
  acked: number;
  /** Entries XTRIM removed. */
  trimmed: number;
  /** Highest stream id handled, or '' when none. */
  lastEntryId: string;
  /** Threshold crossings handed to the warning sink (again after a retry). */
  warnings: number;
}

/** Carries an error thrown by the caller's onStage hook past the pump's own error mapping. */
class StageHookFailure extends Error {
  constructor(readonly error: unknown) {
    super('onStage hook threw');
  }
}

function reached(input: PumpBatchInput, stage: PumpStage): void {
  try {
    input.onStage?.(stage);
  } catch (error) {
    throw new StageHookFailure(error);
  }
}

type StreamEntry = { id: string; fields: string[] | null };

const STREAM_ID = /^\d{1,20}-\d{1,20}$/;

function decodeEntries(raw: unknown, what: string): StreamEntry[] {
  if (!Array.isArray(raw)) throw new InvariantError(`${what}: expected an array of entries`);
  return raw.map((item: unknown) => {
    if (!Array.isArray(item) || typeof item[0] !== 'string' || !STREAM_ID.test(item[0])) {
      throw new InvariantError(`${what}: malformed entry`);
    }
    const fields: unknown = item[1];
    if (fields === null) return { id: item[0], fields: null };
    if (!Array.isArray(fields) || !fields.every((value): value is string => typeof value === 'string')) {
      throw new InvariantError(`${what}: malformed fields of ${item[0]}`);
    }
    return { id: item[0], fields };
  });
}

function compareIds(a: string, b: string): number {
  const [aMs = '0', aSeq = '0'] = a.split('-');
  const [bMs = '0', bSeq = '0'] = b.split('-');
  const byMs = BigInt(aMs) - BigInt(bMs);
  if (byMs !== 0n) return byMs < 0n ? -1 : 1;
  const bySeq = BigInt(aSeq) - BigInt(bSeq);
  return bySeq === 0n ? 0 : bySeq < 0n ? -1 : 1;
}

interface GoodEntry {
  id: string;
  fields: string[];
  entry: LedgerEntry;
  crossings: CrossedThreshold[];
}

/** Splits a batch into ledger entries, poison (with the reason) and entries deleted before they were handled. */
function classify(stream: string, entries: readonly StreamEntry[]): { good: GoodEntry[]; poison: PoisonEntry[]; gone: string[] } {
  const good: GoodEntry[] = [];
  const poison: PoisonEntry[] = [];
  const gone: string[] = [];
  for (const { id, fields: entryFields } of entries) {
    if (entryFields === null) {
      gone.push(id);
      continue;
    }
    const expanded = usageEventsOf(entryFields);
    if (!expanded.isValid) {
      poison.push({ id, fields: entryFields, reason: expanded.reason });
      continue;
    }
    for (const fields of expanded.events) classifyEvent(stream, id, fields, good, poison);
  }
  return { good, poison, gone };
}

/** Parses one event of entry `id` into `good`, or into `poison` with the reason. */
function classifyEvent(stream: string, id: string, fields: string[], good: GoodEntry[], poison: PoisonEntry[]): void {
  const parsed = parseUsageEvent(fields);
  if (!parsed.isValid) {
    poison.push({ id, fields, reason: parsed.reason });
    return;
  }
  const event = parsed.event;
  good.push({
    id,
    fields,
    entry: {
      tenant: event.tenant,
      periodStart: event.periodStart,
      eventId: event.eventId,
      kind: event.type,
      amount: event.amount,
      operation: event.operation,
      atMs: event.timeMs,
      keyId: event.keyId,
      source: `${stream}/${id}`,
      ...(event.correction === undefined ? {} : { reason: event.correction.reason, author: event.correction.author }),
    },
    crossings: event.warnings.map((warning) => ({
      ...warning,
      tenant: event.tenant,
      periodStartMs: event.billingPeriodStartMs,
      eventId: event.eventId,
    })),
  });
}

/** Moves usage events from Redis Streams into the ledger. */
export class UsagePump {
  private readonly options: Required<Omit<UsagePumpOptions, 'warningSink'>>;
  private readonly warningSink: WarningSink | undefined;
  private readonly groupsReady = new Set<string>();

  constructor(
    private readonly redis: DeciderRedis,
    private readonly ledger: LedgerStore,
    options: UsagePumpOptions = {},
  ) {
    const { warningSink, ...rest } = options;
    this.options = { ...DEFAULTS, ...rest };
    this.warningSink = warningSink;
  }

  /**
   * Pumps one batch of one shard.
   * @throws DependencyError when Redis or DynamoDB fails (nothing unledgered was acknowledged; retry is safe)
   * @throws InvariantError when Redis answers in an unexpected shape
   */
  async pumpBatch(input: PumpBatchInput): Promise<PumpBatchResult> {
    const stream = usageStreamKey(input.shard);
    try {
      return await this.pump(stream, input);
    } catch (error) {
      if (error instanceof StageHookFailure) throw error.error;
      if (error instanceof InvariantError || error instanceof DependencyError) throw error;
      if (redisErrorPrefix(error) === 'NOGROUP') this.groupsReady.delete(stream);
      throw new DependencyError('REDIS_UNAVAILABLE', `pump of ${stream} failed`, { cause: error });
    }
  }

  private async pump(stream: string, input: PumpBatchInput): Promise<PumpBatchResult> {
    const { claimCursor, entries, reclaimed } = await this.read(stream, input.claimCursor);
    const result: PumpBatchResult = {
      claimCursor,
      read: entries.length,
      reclaimed,
      posted: 0,
      duplicates: 0,
      deadLettered: 0,
      acked: 0,
      trimmed: 0,
      warnings: 0,
      lastEntryId: entries.reduce((last, entry) => (last === '' || compareIds(entry.id, last) > 0 ? entry.id : last), ''),
    };
    if (entries.length === 0) return result;
    reached(input, 'read');

    const { good, poison, gone } = classify(stream, entries);
    const posted = await this.ledger.postEntries(
      good.map((item) => item.entry),
      input.onProgress === undefined ? {} : { onTransaction: input.onProgress },
    );
    result.posted = posted.posted;
    result.duplicates = posted.duplicates;
    reached(input, 'ledger-written');

    const conflicted = new Set(posted.conflicts.map((conflict) => conflict.entry));
    for (const conflict of posted.conflicts) {
      const item = good.find((candidate) => candidate.entry === conflict.entry);
      if (item !== undefined) poison.push({ id: item.id, fields: item.fields, reason: `ledger conflict: ${conflict.reason}` });
    }
    const crossings = good.filter((item) => !conflicted.has(item.entry)).flatMap((item) => item.crossings);
    if (crossings.length > 0 && this.warningSink !== undefined) {
      try {
        await this.warningSink.notify(crossings);
      } catch (error) {
        throw new DependencyError('DEPENDENCY_FAILED', `the warning sink refused ${crossings.length} crossings of ${stream}`, {
          cause: error,
        });
      }
      result.warnings = crossings.length;
      reached(input, 'warnings-handed');
    }
    // an entry may hold many events (a decide.lua call's): it is acknowledged once, after all of them are handled
    const deadIds = new Set(poison.map((item) => item.id));
    if (poison.length > 0) {
      const dead = await deadLetter({
        redis: this.redis,
        stream,
        deadLetters: deadLetterStreamKey(input.shard),
        group: this.options.group,
        poison,
      });
      result.deadLettered = dead.deadLettered;
      result.acked += dead.acked;
      reached(input, 'dead-lettered');
    }

    const ackIds = new Set(good.filter((item) => !conflicted.has(item.entry) && !deadIds.has(item.id)).map((item) => item.id));
    for (const id of gone) ackIds.add(id);
    if (ackIds.size > 0) {
      await this.redis.xack(stream, this.options.group, ...ackIds);
      result.acked += ackIds.size;
    }
    reached(input, 'acked');
    result.trimmed = await this.trim(stream);
    reached(input, 'trimmed');
    return result;
  }

  /** Entries pending past the min idle time (from the cursor on); if there are none, new entries. */
  private async read(stream: string, cursor: string): Promise<{ claimCursor: string; entries: StreamEntry[]; reclaimed: number }> {
    const { group, consumer, batchSize, claimMinIdleMs } = this.options;
    await this.ensureGroup(stream);
    const claim = await this.redis.xautoclaim(stream, group, consumer, claimMinIdleMs, cursor, 'COUNT', batchSize);
    if (!Array.isArray(claim) || typeof claim[0] !== 'string' || !STREAM_ID.test(claim[0])) {
      throw new InvariantError('XAUTOCLAIM: malformed reply');
    }
    const reclaimed = decodeEntries(claim[1], 'XAUTOCLAIM');
    if (reclaimed.length > 0) return { claimCursor: claim[0], entries: reclaimed, reclaimed: reclaimed.length };
    const reply = await this.redis.xreadgroup('GROUP', group, consumer, 'COUNT', batchSize, 'STREAMS', stream, '>');
    if (reply === null) return { claimCursor: claim[0], entries: [], reclaimed: 0 };
    const first: unknown = Array.isArray(reply) ? reply[0] : undefined;
    if (!Array.isArray(first)) throw new InvariantError('XREADGROUP: malformed reply');
    return { claimCursor: claim[0], entries: decodeEntries(first[1], 'XREADGROUP'), reclaimed: 0 };
  }

  private async ensureGroup(stream: string): Promise<void> {
    if (this.groupsReady.has(stream)) return;
    try {
      // '0': a new group reads the stream from its start (events appended before the pump ever ran count too).
      await this.redis.xgroup('CREATE', stream, this.options.group, '0', 'MKSTREAM');
    } catch (error) {
      if (redisErrorPrefix(error) !== 'BUSYGROUP') throw error;
    }
    this.groupsReady.add(stream);
  }

  /**
   * Removes entries below what every consumer group still needs: its oldest
   * pending entry, or, with nothing pending, its last delivered entry (kept;
   * everything older is acknowledged). Entries never delivered are above both.
   */
  private async trim(stream: string): Promise<number> {
    const groups: unknown = await this.redis.xinfo('GROUPS', stream);
    if (!Array.isArray(groups) || groups.length === 0) return 0;
    let floor: string | undefined;
    for (const raw of groups) {
      if (!Array.isArray(raw)) throw new InvariantError('XINFO GROUPS: malformed reply');
      const info = new Map<string, unknown>();
      for (let index = 0; index + 1 < raw.length; index += 2) info.set(String(raw[index]), raw[index + 1]);
      const name = info.get('name');
      const lastDelivered = info.get('last-delivered-id');
      if (typeof name !== 'string' || typeof lastDelivered !== 'string' || !STREAM_ID.test(lastDelivered)) {
        throw new InvariantError('XINFO GROUPS: malformed group');
      }
      let needed = lastDelivered;
      const pending: unknown = await this.redis.xpending(stream, name);
      if (Array.isArray(pending) && typeof pending[1] === 'string' && STREAM_ID.test(pending[1])) needed = pending[1];
      if (floor === undefined || compareIds(needed, floor) < 0) floor = needed;
    }
    if (floor === undefined || floor === '0-0') return 0;
    return Number(await this.redis.xtrim(stream, 'MINID', floor));
  }
}
