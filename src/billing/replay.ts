/**
 * What-if replay: a tenant's recorded usage (its ledger entries, in event-time order) run again
 * against a proposed plan's limits with the decider's TypeScript model (`decideModel`, `settleModel`:
 * exactly what `lua/decide.lua` and `settle.lua` do), reporting per request what that plan would have
 * decided and, per UTC day and limit, how many requests it would have denied, deferred or warned and
 * how many units it would have billed. Pure: no I/O.
 *
 * What the ledger records, and so what a replay can know:
 * - admitted requests only (a denied request took nothing, so leaving it out changes no state);
 * - each request's reservation time and cost, its settlement (refund) time, its key (apiKey-scoped
 *   limits; entries without one count under one key), not its client address: ip-scoped limits are
 *   replayed as one address;
 * - degraded (fail-open) requests were admitted without the decider: they are billed as recorded and
 *   take nothing from the replayed limits; corrections are billed as recorded.
 * Replayed under the plan it ran under, recorded traffic gets the decisions it got (the agreement test).
 */
import {
  compileRequest,
  decideModel,
  emptyModelState,
  settleModel,
  type LimitSpec,
  ALG,
  type CompiledLimit,
  type ModelRequest,
  type PeriodSpec,
  type RawDecision,
} from '../decider/index.js';
import { parseEventId, parseKeyId, type KeyId, type TenantId } from '../shared/index.js';

/** One recorded ledger entry, as the replay reads it. */
export interface RecordedEntry {
  eventId: string;
  kind: string;
  amount: number;
  operation: string;
  atMs: number;
  keyId: string | null;
}

export type ReplayKind = 'allowed' | 'warned' | 'deferred' | 'denied' | 'recorded';

/** One request's replayed decision; `remaining` per limit id after it (as `extensions.cost` reports). */
export interface ReplayedRequest {
  requestId: string;
  atMs: number;
  cost: number;
  kind: ReplayKind;
  /** The limit that denied or deferred it. */
  limitId: string | null;
  remaining: Record<string, number>;
}

/** One UTC day of a replay. */
export interface ReplayDay {
  day: string;
  requests: number;
  recordedUnits: number;
  replayedUnits: number;
  /** Per limit id: requests this limit would have denied, deferred, or warned about. */
  limits: Record<string, { denied: number; deferred: number; warned: number }>;
}

export interface ReplayResult {
  requests: ReplayedRequest[];
  days: ReplayDay[];
  totals: { requests: number; denied: number; deferred: number; warned: number; recordedUnits: number; replayedUnits: number };
}

export interface ReplayInput {
  tenant: TenantId;
  limits: LimitSpec[];
  billingPeriod: PeriodSpec;
  subShards?: number;
  /** Time ordered (`DynamoUsageReader.entriesBetween`). */
  entries: readonly RecordedEntry[];
  /** Keep every request's decision in `requests` (memory: one object per request). @default true */
  shouldKeepRequests?: boolean;
  /** Called with the entries replayed so far, every `PROGRESS_EVERY` entries and once at the end (a CLI's progress bar). */
  onProgress?: (done: number) => void;
}

/** How many entries a replay goes through between two `onProgress` calls. */
export const PROGRESS_EVERY = 10_000;

const SETTLED_SUFFIX = '.settled';
const REPLAY_ADDRESS = '127.0.0.1';
const KINDS: ReplayKind[] = ['allowed', 'warned', 'deferred', 'denied'];

function dayOf(days: Map<string, ReplayDay>, atMs: number, limits: readonly LimitSpec[]): ReplayDay {
  const day = new Date(atMs).toISOString().slice(0, 10);
  let entry = days.get(day);
  if (entry === undefined) {
    entry = { day, requests: 0, recordedUnits: 0, replayedUnits: 0, limits: {} };
    for (const limit of limits) entry.limits[limit.id] = { denied: 0, deferred: 0, warned: 0 };
    days.set(day, entry);
  }
  return entry;
}

/** Counts, per limit of a warned request, a threshold it crossed or a soft limit it exceeded. */
function countWarnings(day: ReplayDay, reply: RawDecision, compiled: { limitIds: readonly string[]; modes: readonly string[] }): void {
  reply.limits.forEach((limit, index) => {
    const id = compiled.limitIds[index];
    const mode = compiled.modes[index];
    const isWarning = (limit.crossed > 0 && mode !== 'shadow') || (mode === 'soft' && (limit.flags & 1) === 1);
    const counts = id === undefined ? undefined : day.limits[id];
    if (isWarning && counts !== undefined) counts.warned += 1;
  });
}

interface CompiledLimits {
  limits: CompiledLimit[];
  limitIds: readonly string[];
  modes: readonly string[];
  /** The compiled keys name periods that stay current until this instant (ms). */
  validUntilMs: number;
}

/**
 * The request's limits as the model takes them (keys and parameters): compiled with the decider's own
 * compiler, kept per API key while the periods they name stay current (a whale tenant's part depends
 * on the request id: compiled per request).
 */
function limitsCompiler(input: ReplayInput, keyOf: (raw: string | null) => KeyId): (entry: RecordedEntry) => CompiledLimits {
  const cache = new Map<string, CompiledLimits>();
  const isSplit = (input.subShards ?? 1) > 1;
  return (entry) => {
    const cacheKey = entry.keyId ?? '';
    const known = isSplit ? undefined : cache.get(cacheKey);
    if (known !== undefined && entry.atMs < known.validUntilMs) return known;
    const compiled = compileRequest(
      {
        tenant: input.tenant,
        keyId: keyOf(entry.keyId),
        requestId: parseEventId(entry.eventId),
        operation: entry.operation,
        cost: entry.amount,
        limits: input.limits,
        billingPeriod: input.billingPeriod,
        policyVersion: 0,
        clientIp: REPLAY_ADDRESS,
        ...(input.subShards === undefined ? {} : { subShards: input.subShards }),
      },
      { shardCount: 1, localNowMs: entry.atMs },
    );
    const { limits } = compiled.model;
    let validUntilMs = Number.MAX_SAFE_INTEGER;
    for (const limit of limits) if (limit.alg === ALG.periodQuota) validUntilMs = Math.min(validUntilMs, limit.p3);
    const fresh = { limits, limitIds: compiled.limitIds, modes: compiled.modes, validUntilMs };
    if (!isSplit) cache.set(cacheKey, fresh);
    return fresh;
  };
}

/** Replays the entries against the limits (see the file header). @throws ValidationError for a limit the decider refuses */
export function replayUsage(input: ReplayInput): ReplayResult {
  const state = emptyModelState();
  const admitted = new Map<string, { model: ModelRequest; cost: number }>();
  const days = new Map<string, ReplayDay>();
  const requests: ReplayedRequest[] = [];
  const totals = { requests: 0, denied: 0, deferred: 0, warned: 0, recordedUnits: 0, replayedUnits: 0 };
  const keys = new Map<string, KeyId>();
  const keyOf = (raw: string | null): KeyId => {
    const name = raw ?? 'unrecorded';
    let key = keys.get(name);
    if (key === undefined) keys.set(name, (key = parseKeyId(name)));
    return key;
  };
  const compiledFor = limitsCompiler(input, keyOf);
  const { onProgress } = input;
  let done = 0;
  for (const entry of input.entries) {
    if (onProgress !== undefined && done % PROGRESS_EVERY === 0 && done > 0) onProgress(done);
    done += 1;
    const day = dayOf(days, entry.atMs, input.limits);
    day.recordedUnits += entry.amount;
    totals.recordedUnits += entry.amount;
    if (entry.kind === 'usage.settled.v1') {
      const request = admitted.get(entry.eventId.slice(0, -SETTLED_SUFFIX.length));
      if (request === undefined) continue; // its request was denied in this replay: nothing to settle, nothing billed
      // the settled entry is −refund: actual = requested − refund
      settleModel(state, request.model, request.cost + entry.amount, entry.atMs);
      day.replayedUnits += entry.amount;
      totals.replayedUnits += entry.amount;
      continue;
    }
    if (entry.kind !== 'usage.reserved.v1') {
      day.replayedUnits += entry.amount;
      totals.replayedUnits += entry.amount;
      if (input.shouldKeepRequests !== false) {
        requests.push({ requestId: entry.eventId, atMs: entry.atMs, cost: entry.amount, kind: 'recorded', limitId: null, remaining: {} });
      }
      continue;
    }
    const compiled = compiledFor(entry);
    const model: ModelRequest = { requestId: entry.eventId, recordKey: entry.eventId, cost: entry.amount, limits: compiled.limits };
    const reply = decideModel(state, model, entry.atMs);
    const kind = KINDS[reply.kind] as ReplayKind;
    day.requests += 1;
    totals.requests += 1;
    const limitId = reply.kind >= 2 ? (compiled.limitIds[reply.limitIndex - 1] ?? null) : null;
    if (reply.kind <= 1) {
      admitted.set(entry.eventId, { model, cost: entry.amount });
      day.replayedUnits += entry.amount;
      totals.replayedUnits += entry.amount;
    }
    if (limitId !== null) {
      const counts = day.limits[limitId];
      if (counts !== undefined) counts[kind === 'denied' ? 'denied' : 'deferred'] += 1;
      totals[kind === 'denied' ? 'denied' : 'deferred'] += 1;
    }
    if (reply.kind === 1) {
      totals.warned += 1;
      countWarnings(day, reply, compiled);
    }
    if (input.shouldKeepRequests !== false) {
      const remaining: Record<string, number> = {};
      reply.limits.forEach((limit, index) => (remaining[compiled.limitIds[index] as string] = limit.remaining));
      requests.push({ requestId: entry.eventId, atMs: entry.atMs, cost: entry.amount, kind, limitId, remaining });
    }
  }
  onProgress?.(done);
  return { requests, days: [...days.values()].sort((a, b) => (a.day < b.day ? -1 : 1)), totals };
}
