/**
 * The metering audit (DESIGN §6): for each tenant and billing period, the
 * decider's admitted counter (summed over a whale tenant's parts) must equal
 * the ledger plus what is still in flight in the usage streams.
 *
 * Exactness. Counter and event move in one script call, so the only way to
 * see a false drift is to read counter, stream and ledger at different
 * moments. One audit therefore:
 *   1. per part, snapshots the counter and the shard stream's unacknowledged
 *      entries in ONE MULTI (same hash tag, same slot: atomic on a cluster too);
 *   2. reads the ledger as of one moment: the balance item and, for every
 *      in-flight event of this tenant and period, its entry (`entry#<id>`) and
 *      late-credit marker (`late#<id>`), in one TransactGetItems (up to 49
 *      events) or as held-ids, balance, held-ids-again (retried if the two
 *      differ); an event the pump ledgered after step 1 is found there and not
 *      counted twice;
 *   3. per part, re-reads the counter and the entries appended since step 1
 *      (MULTI again): if the counter moved, or an event of this tenant and
 *      period was appended (it could be in the ledger already), the snapshot is
 *      retried, up to `snapshotAttempts` times; a tenant-period that never holds
 *      still is reported `unsettled` (busy), never as drift.
 * Bounded work: a stream snapshot reads at most `maxStreamEntries` entries and
 * the ledger read at most `maxInFlightEvents` in-flight events; beyond
 * either the tenant-period is `unsettled` (a backlog) and audited next cycle.
 *
 * An in-flight event whose id the ledger already holds counts as ledgered, so
 * an event that reuses a ledgered id (a conflict the pump will dead-letter, or
 * the same event appended twice) is drift as soon as it is appended.
 *
 * Where drift comes from when it is real: a dead-lettered usage event (poison
 * or a ledger conflict: counted by the decider, never ledgered), a settle whose
 * refund exceeds the counter (settle.lua clamps the counter at 0 while the
 * event carries the whole refund: the counter key expired or was lost by a
 * Redis restart without fsync), a lost stream entry (Redis `everysec` crash),
 * or a counter key that expired (400 days after its period end) before the audit.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Cluster, Redis } from 'ioredis';
import { DependencyError, InvariantError, parseTenantId, type TenantId } from '../shared/index.js';
import {
  MAX_SUB_SHARDS,
  admittedKey,
  admittedKeyPattern,
  parseAdmittedKey,
  redisErrorPrefix,
  shardOfPart,
  usageStreamKey,
  type DeciderRedis,
  type ShardId,
} from '../decider/index.js';
import { AuditLedgerReader } from './audit-ledger-reader.js';
import { inFlightOf, ledgeredFor, tenantPeriodAudit, unacknowledged, type InFlightEvent, type TenantPeriodAudit } from './model/audit.js';
import { parseUsageEvent } from './model/usage-event.js';
import { usageEventsOf } from './stream-entry.js';

export interface MeteringAuditorOptions {
  /** DECIDER_SHARDS: fixed for the life of the data. */
  shardCount: number;
  tablePrefix: string;
  /** Consumer group of the pump. @default 'meter' */
  group?: string;
  /** Most stream entries one snapshot of one shard reads. @default 10000 */
  maxStreamEntries?: number;
  /** Snapshots tried before a tenant-period whose stream keeps moving is reported unsettled. @default 3 */
  snapshotAttempts?: number;
  /** Most in-flight events of one tenant-period looked up in the ledger (50 per read); beyond it: unsettled. @default 2000 */
  maxInFlightEvents?: number;
}

const DEFAULTS = { group: 'meter', maxStreamEntries: 10_000, snapshotAttempts: 3, maxInFlightEvents: 2_000 };

export type AuditOutcome =
  { kind: 'audited'; report: TenantPeriodAudit } | { kind: 'unsettled'; tenant: string; periodStart: string; reason: 'busy' | 'backlog' };

/** Where a scan of admitted-counter keys continues: a node (index of the masters, 0 on a single Redis) and its SCAN cursor. */
export interface AuditScanPosition {
  node: number;
  cursor: string;
}

export interface AuditPageResult {
  outcomes: AuditOutcome[];
  /** Next position, or null when the scan has covered every node. */
  next: AuditScanPosition | null;
  /** Admitted-counter keys the page's SCAN returned. */
  keysScanned: number;
}

interface PartSnapshot {
  stream: string;
  counter: number;
  entriesAdded: number;
  lastGeneratedId: string;
  events: InFlightEvent[];
  isTruncated: boolean;
}

type MultiReply = [Error | null, unknown][] | null;

function mapOf(raw: unknown, what: string): Map<string, unknown> {
  if (!Array.isArray(raw)) throw new InvariantError(`${what}: expected a flat array`);
  const map = new Map<string, unknown>();
  for (let index = 0; index + 1 < raw.length; index += 2) map.set(String(raw[index]), raw[index + 1]);
  return map;
}

function intOf(raw: unknown, what: string): number {
  const value = typeof raw === 'number' ? raw : typeof raw === 'string' ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(value)) throw new InvariantError(`${what}: not an integer`);
  return value;
}

function entriesOf(raw: unknown, what: string): { id: string; fields: string[] }[] {
  if (!Array.isArray(raw)) throw new InvariantError(`${what}: expected entries`);
  return raw.map((item: unknown) => {
    if (!Array.isArray(item) || typeof item[0] !== 'string' || !Array.isArray(item[1]))
      throw new InvariantError(`${what}: malformed entry`);
    return { id: item[0], fields: (item[1] as unknown[]).map(String) };
  });
}

/** Parses the entries that are usage events (poison is the pump's business: it never reaches the ledger). */
function usageEvents(entries: readonly { id: string; fields: string[] }[]): InFlightEvent[] {
  const events: InFlightEvent[] = [];
  for (const entry of entries) {
    const expanded = usageEventsOf(entry.fields);
    if (!expanded.isValid) continue;
    for (const fields of expanded.events) {
      const parsed = parseUsageEvent(fields);
      if (!parsed.isValid) continue;
      const { event } = parsed;
      events.push({
        id: entry.id,
        eventId: event.eventId,
        tenant: event.tenant,
        billingPeriodStartMs: event.billingPeriodStartMs,
        amount: event.amount,
      });
    }
  }
  return events;
}

/** Compares the decider's admitted counters with the ledger. Read-only everywhere. */
export class MeteringAuditor {
  private readonly options: Required<MeteringAuditorOptions>;
  private readonly ledger: AuditLedgerReader;

  constructor(
    private readonly redis: DeciderRedis,
    dynamo: DynamoDBClient,
    options: MeteringAuditorOptions,
  ) {
    this.options = { ...DEFAULTS, ...options };
    this.ledger = new AuditLedgerReader(dynamo, { tablePrefix: options.tablePrefix });
  }

  /**
   * Audits one tenant and period: the unsplit counter and, when `isWhale`, every
   * part (0..63) whose counter exists (a part that never admitted a unit has no
   * counter and no event that moves anything).
   * @throws DependencyError when Redis or DynamoDB fails (nothing is written; retry is safe)
   */
  async auditTenantPeriod(input: { tenant: string; periodStartMs: number; isWhale?: boolean }): Promise<AuditOutcome> {
    const tenant = parseTenantId(input.tenant);
    const periodStart = new Date(input.periodStartMs).toISOString();
    try {
      const parts: (number | undefined)[] = input.isWhale === true ? await this.existingParts(tenant, input.periodStartMs) : [undefined];
      for (let attempt = 0; attempt < this.options.snapshotAttempts; attempt += 1) {
        const outcome = await this.tryAudit({ tenant, periodStartMs: input.periodStartMs, periodStart, parts });
        if (outcome !== 'moved') return outcome;
      }
    } catch (error) {
      if (error instanceof DependencyError || error instanceof InvariantError) throw error;
      throw new DependencyError('REDIS_UNAVAILABLE', `audit of ${tenant} ${periodStart} failed`, { cause: error });
    }
    return { kind: 'unsettled', tenant, periodStart, reason: 'busy' };
  }

  /** The unsplit counter and the parts whose counter exists (one EXISTS per possible part, each in its own slot). */
  private async existingParts(tenant: TenantId, periodStartMs: number): Promise<(number | undefined)[]> {
    const candidates: (number | undefined)[] = [undefined, ...Array.from({ length: MAX_SUB_SHARDS }, (_, part) => part)];
    const exists = await Promise.all(candidates.map((part) => this.redis.exists(this.partKeys(tenant, periodStartMs, part).counter)));
    const parts = candidates.filter((_, index) => exists[index] === 1);
    return parts.length === 0 ? [undefined] : parts;
  }

  /**
   * Audits the tenant-periods of one shard: one page of `SCAN MATCH {s:<shard>}:t:*:a:v1:*`
   * from `cursor` (a full keyspace walk per shard; prefer auditPage for every shard).
   */
  async auditShard(input: { shard: number; cursor?: string; count?: number }): Promise<AuditPageResult> {
    const pattern = admittedKeyPattern(input.shard as ShardId);
    return this.auditScan({ node: 0, cursor: input.cursor ?? '0' }, pattern, input.count ?? 1_000);
  }

  /**
   * Audits the tenant-periods whose admitted counters one page of a SCAN finds
   * (every shard: `SCAN MATCH {s:*}:t:*:a:v1:*`, on each master of a cluster in
   * turn). A tenant-period found on several parts in a page is audited once.
   * Bounded: one SCAN of `count` keys, then one audit per distinct tenant-period found.
   */
  async auditPage(input: { position: AuditScanPosition; count: number }): Promise<AuditPageResult> {
    return this.auditScan(input.position, admittedKeyPattern(), input.count);
  }

  private nodes(): (Redis | Cluster)[] {
    const redis = this.redis;
    return redis.isCluster ? (redis as Cluster).nodes('master') : [redis];
  }

  private async auditScan(position: AuditScanPosition, pattern: string, count: number): Promise<AuditPageResult> {
    const nodes = this.nodes();
    const node = nodes[position.node];
    if (node === undefined) return { outcomes: [], next: null, keysScanned: 0 };
    let reply: [string, string[]];
    try {
      reply = await (node as Redis).scan(position.cursor, 'MATCH', pattern, 'COUNT', count);
    } catch (error) {
      throw new DependencyError('REDIS_UNAVAILABLE', 'audit SCAN failed', { cause: error });
    }
    const [cursor, keys] = reply;
    const found = new Map<string, { tenant: TenantId; periodStartMs: number; isWhale: boolean }>();
    for (const key of keys) {
      const parsed = parseAdmittedKey(key);
      if (parsed === undefined) continue;
      const id = `${parsed.tenant}/${parsed.periodStartMs}`;
      const known = found.get(id);
      found.set(id, {
        tenant: parsed.tenant,
        periodStartMs: parsed.periodStartMs,
        isWhale: (known?.isWhale ?? false) || parsed.part !== undefined,
      });
    }
    const outcomes: AuditOutcome[] = [];
    for (const item of found.values()) {
      let outcome = await this.auditTenantPeriod(item);
      // A tenant whose plan split it over parts mid-period has both layouts: look for parts before calling it drift.
      if (!item.isWhale && outcome.kind === 'audited' && outcome.report.drift !== 0) {
        outcome = await this.auditTenantPeriod({ ...item, isWhale: true });
      }
      outcomes.push(outcome);
    }
    const next =
      cursor !== '0' ? { node: position.node, cursor } : position.node + 1 < nodes.length ? { node: position.node + 1, cursor: '0' } : null;
    return { outcomes, next, keysScanned: keys.length };
  }

  private async tryAudit(input: {
    tenant: TenantId;
    periodStartMs: number;
    periodStart: string;
    parts: (number | undefined)[];
  }): Promise<AuditOutcome | 'moved'> {
    const { tenant, periodStartMs, periodStart } = input;
    // 1. one atomic snapshot per part: its counter and its shard stream's unacknowledged entries
    const before = new Map<number | undefined, PartSnapshot>();
    for (const part of input.parts) {
      const snapshot = await this.snapshot(tenant, periodStartMs, part);
      if (snapshot.isTruncated) return { kind: 'unsettled', tenant, periodStart, reason: 'backlog' };
      before.set(part, snapshot);
    }
    const partsRead = [...before.values()].filter((snapshot) => snapshot.counter !== 0).length;
    // the unsplit counter and part 0 share a shard, hence a stream: count each event of a stream entry once
    const entries = new Map<string, InFlightEvent>();
    for (const snapshot of before.values()) {
      for (const event of snapshot.events) entries.set(`${snapshot.stream}/${event.id}/${event.eventId}`, event);
    }
    const events = [...entries.values()];
    const mine = inFlightOf({ events, tenant, billingPeriodStartMs: periodStartMs, ledgered: new Set() });
    if (mine.eventIds.length > this.options.maxInFlightEvents) return { kind: 'unsettled', tenant, periodStart, reason: 'backlog' };
    // 2. one consistent read of the ledger: the balance and the in-flight events it already holds
    const ledger = await this.ledger.snapshot({ tenant, periodStart, eventIds: mine.eventIds });
    if (ledger === undefined) return 'moved';
    // 3. nothing of this tenant-period moved meanwhile (else the ledger may hold what the snapshot lacks)
    for (const [part, snapshot] of before) {
      if (await this.hasMoved({ tenant, periodStartMs, part, snapshot })) return 'moved';
    }
    const inFlight = inFlightOf({ events, tenant, billingPeriodStartMs: periodStartMs, ledgered: ledger.heldEventIds });
    const admitted = [...before.values()].reduce((sum, snapshot) => sum + snapshot.counter, 0);
    return {
      kind: 'audited',
      report: tenantPeriodAudit({
        tenant,
        periodStart,
        admitted,
        ledgered: ledgeredFor(ledger.balance),
        inFlight: inFlight.amount,
        ledgerEntries: ledger.balance.entries,
        duplicateEvents: inFlight.duplicateEvents,
        parts: Math.max(1, partsRead),
      }),
    };
  }

  private partKeys(tenant: TenantId, periodStartMs: number, part: number | undefined): { counter: string; stream: string } {
    const shard = shardOfPart(tenant, this.options.shardCount, part);
    return { counter: admittedKey(shard, tenant, periodStartMs, part), stream: usageStreamKey(shard) };
  }

  private async snapshot(tenant: TenantId, periodStartMs: number, part: number | undefined): Promise<PartSnapshot> {
    const { counter, stream } = this.partKeys(tenant, periodStartMs, part);
    const max = this.options.maxStreamEntries;
    const replies: MultiReply = await this.redis
      .multi()
      .get(counter)
      .xlen(stream)
      .xinfo('STREAM', stream)
      .xinfo('GROUPS', stream)
      .xpending(stream, this.options.group, '-', '+', max)
      .xrange(stream, '-', '+', 'COUNT', max + 1)
      .exec();
    if (replies === null || replies.length !== 6) throw new DependencyError('REDIS_UNAVAILABLE', `audit snapshot of ${stream} was aborted`);
    const [
      [counterError, counterRaw],
      [lenError, lenRaw],
      [infoError, infoRaw],
      [groupsError, groupsRaw],
      [pendingError, pendingRaw],
      [rangeError, rangeRaw],
    ] = replies as [
      [Error | null, unknown],
      [Error | null, unknown],
      [Error | null, unknown],
      [Error | null, unknown],
      [Error | null, unknown],
      [Error | null, unknown],
    ];
    if (counterError !== null || lenError !== null || rangeError !== null) {
      throw new DependencyError('REDIS_UNAVAILABLE', `audit snapshot of ${stream} failed`, {
        cause: counterError ?? lenError ?? rangeError,
      });
    }
    const counterValue = counterRaw === null ? 0 : intOf(counterRaw, `admitted counter ${counter}`);
    const length = intOf(lenRaw, 'XLEN');
    if (infoError !== null) {
      // no stream (never written): nothing in flight
      if (length !== 0) throw new DependencyError('REDIS_UNAVAILABLE', `XINFO STREAM ${stream} failed`, { cause: infoError });
      return { stream, counter: counterValue, entriesAdded: 0, lastGeneratedId: '0-0', events: [], isTruncated: false };
    }
    const info = mapOf(infoRaw, 'XINFO STREAM');
    const entriesAdded = intOf(info.get('entries-added'), 'XINFO STREAM entries-added');
    const lastGeneratedId = String(info.get('last-generated-id'));
    let lastDeliveredId = '0-0';
    let pendingIds = new Set<string>();
    if (groupsError !== null) throw new DependencyError('REDIS_UNAVAILABLE', `XINFO GROUPS ${stream} failed`, { cause: groupsError });
    const group = (Array.isArray(groupsRaw) ? groupsRaw : [])
      .map((raw: unknown) => mapOf(raw, 'XINFO GROUPS'))
      .find((candidate) => candidate.get('name') === this.options.group);
    if (group !== undefined) {
      lastDeliveredId = String(group.get('last-delivered-id'));
      if (pendingError !== null) throw new DependencyError('REDIS_UNAVAILABLE', `XPENDING ${stream} failed`, { cause: pendingError });
      if (!Array.isArray(pendingRaw)) throw new InvariantError('XPENDING: expected an array');
      if (pendingRaw.length > max) return { stream, counter: counterValue, entriesAdded, lastGeneratedId, events: [], isTruncated: true };
      pendingIds = new Set(pendingRaw.map((item: unknown) => (Array.isArray(item) ? String(item[0]) : '')));
    } else if (pendingError !== null && redisErrorPrefix(pendingError) !== 'NOGROUP') {
      throw new DependencyError('REDIS_UNAVAILABLE', `XPENDING ${stream} failed`, { cause: pendingError });
    }
    const entries = entriesOf(rangeRaw, 'XRANGE');
    if (entries.length > max) return { stream, counter: counterValue, entriesAdded, lastGeneratedId, events: [], isTruncated: true };
    const open = unacknowledged({ entries, pendingIds, lastDeliveredId });
    return { stream, counter: counterValue, entriesAdded, lastGeneratedId, events: usageEvents(open), isTruncated: false };
  }

  /** True when the part's counter changed or an event of this tenant-period may have been appended since the snapshot. */
  private async hasMoved(input: {
    tenant: TenantId;
    periodStartMs: number;
    part: number | undefined;
    snapshot: PartSnapshot;
  }): Promise<boolean> {
    const { counter, stream } = this.partKeys(input.tenant, input.periodStartMs, input.part);
    const max = this.options.maxStreamEntries;
    const replies: MultiReply = await this.redis
      .multi()
      .get(counter)
      .xinfo('STREAM', stream)
      .xrange(stream, `(${input.snapshot.lastGeneratedId}`, '+', 'COUNT', max + 1)
      .exec();
    if (replies === null) throw new DependencyError('REDIS_UNAVAILABLE', `audit re-read of ${stream} was aborted`);
    const [[counterError, counterRaw] = [null, null], [infoError, infoRaw] = [null, null], [rangeError, rangeRaw] = [null, []]] = replies;
    if (counterError !== null || rangeError !== null) {
      throw new DependencyError('REDIS_UNAVAILABLE', `audit re-read of ${stream} failed`, { cause: counterError ?? rangeError });
    }
    const counterValue = counterRaw === null ? 0 : intOf(counterRaw, `admitted counter ${counter}`);
    if (counterValue !== input.snapshot.counter) return true;
    // no stream now: unchanged if there was none before
    if (infoError !== null) return input.snapshot.entriesAdded !== 0;
    const added = intOf(mapOf(infoRaw, 'XINFO STREAM').get('entries-added'), 'XINFO STREAM entries-added') - input.snapshot.entriesAdded;
    if (added === 0) return false;
    const appended = entriesOf(rangeRaw, 'XRANGE');
    // some appended entries were already trimmed (so ledgered): they cannot be inspected
    if (appended.length < added || appended.length > max) return true;
    return usageEvents(appended).some((event) => event.tenant === input.tenant && event.billingPeriodStartMs === input.periodStartMs);
  }
}
