/**
 * The only place Redis keys are built (STYLE §4, DESIGN §5). Every key of one
 * atomic decision carries its logical shard's hash tag `{s:<shard>}`, so one
 * script call touches one slot on a single Redis or on Redis Cluster. Key parts
 * are branded ids whose alphabet excludes every separator, so no two distinct
 * inputs build the same key. `v1` is the data-layout version.
 */
import { isIP } from 'node:net';
import { ValidationError, type EventId, type KeyId, type LimitId, type TenantId } from '../shared/index.js';

/** A logical shard number in [0, shardCount). */
export type ShardId = number & { readonly __brand: 'ShardId' };

/** 32-bit FNV-1a over the UTF-8 bytes: stable across processes, versions and languages. */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index += 1) {
    const code = text.charCodeAt(index);
    if (code >= 0x80) return fnv1a32Bytes(Buffer.from(text, 'utf8'));
    hash = Math.imul(hash ^ code, 0x01000193);
  }
  return hash >>> 0;
}

function fnv1a32Bytes(bytes: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (const byte of bytes) hash = Math.imul(hash ^ byte, 0x01000193);
  return hash >>> 0;
}

/** The logical shard of a tenant. Changing `shardCount` re-homes tenants: it is fixed for the life of the data. */
export function shardOf(tenant: TenantId, shardCount: number): ShardId {
  if (!Number.isInteger(shardCount) || shardCount < 1 || shardCount > 16_384) {
    throw new ValidationError('INVALID_INPUT', `shardCount must be an integer in 1..16384, got ${shardCount}`);
  }
  return (fnv1a32(tenant) % shardCount) as ShardId;
}

/** Each shard's hash tag and usage stream key, built once (every key of a request starts with the tag): 16,384 slots. */
const TAGS = new Array<string | undefined>(16_384).fill(undefined);
const STREAMS = new Array<string | undefined>(16_384).fill(undefined);

function tag(shard: ShardId): string {
  const known = TAGS[shard];
  if (known !== undefined) return known;
  const built = `{s:${shard}}`;
  if (Number.isInteger(shard) && shard >= 0 && shard < TAGS.length) TAGS[shard] = built;
  return built;
}

/** Most sub-shards a whale tenant can be split over. */
export const MAX_SUB_SHARDS = 64;

/**
 * A whale tenant's part for one request: its limits are divided over
 * `subShards` parts on consecutive logical shards, and a request goes to part
 * fnv1a32(requestId) mod subShards (so a retry lands on the same part).
 * `undefined` for an unsplit tenant (subShards = 1): its keys carry no part.
 * @throws ValidationError `INVALID_INPUT` for subShards outside 1..64
 */
export function partOf(requestId: EventId, subShards: number): number | undefined {
  if (!Number.isInteger(subShards) || subShards < 1 || subShards > MAX_SUB_SHARDS) {
    throw new ValidationError('INVALID_INPUT', `subShards must be an integer in 1..${MAX_SUB_SHARDS}, got ${subShards}`);
  }
  return subShards === 1 ? undefined : fnv1a32(requestId) % subShards;
}

/** The logical shard of a tenant, or of one part of a whale tenant (parts sit on consecutive shards). */
export function shardOfPart(tenant: TenantId, shardCount: number, part: number | undefined): ShardId {
  const base = shardOf(tenant, shardCount);
  return (part === undefined ? base : (base + part) % shardCount) as ShardId;
}

/** `t:<tenant>` or, for a part of a whale tenant, `t:<tenant>:u:<part>`. */
function tenantSegment(tenant: TenantId, part: number | undefined): string {
  return part === undefined ? `t:${tenant}` : `t:${tenant}:u:${part}`;
}

/** `{s:<shard>}:usage:v1`: the shard's usage stream (the billing record). */
export function usageStreamKey(shard: ShardId): string {
  const known = STREAMS[shard];
  if (known !== undefined) return known;
  const built = `${tag(shard)}:usage:v1`;
  if (Number.isInteger(shard) && shard >= 0 && shard < STREAMS.length) STREAMS[shard] = built;
  return built;
}

/** A deployment's name (the API instances that share limits): the tenant id alphabet. */
const DEPLOYMENT = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/**
 * `{i:<deployment>}:instances:v1`: the live API instances of a deployment (zset: instance id → last heartbeat, ms).
 * @throws ValidationError when `deployment` is not a lower-case name of at most 64 characters
 */
export function instancesKey(deployment: string): string {
  if (!DEPLOYMENT.test(deployment)) throw new ValidationError('INVALID_INPUT', `deployment name ${JSON.stringify(deployment)} is invalid`);
  return `{i:${deployment}}:instances:v1`;
}

/** `{s:<shard>}:dead:v1`: usage entries the metering pump could not ledger, with the reason (same slot as the stream). */
export function deadLetterStreamKey(shard: ShardId): string {
  return `${tag(shard)}:dead:v1`;
}

/** `{s:<shard>}:e:v1:<eventId>`: marks an event id as appended (dedupe on retry and spool replay). */
export function eventMarkerKey(shard: ShardId, eventId: EventId): string {
  return `${tag(shard)}:e:v1:${eventId}`;
}

/** Whose bucket a limit key is: the tenant's, one API key's, or one client address's. */
export type LimitSubject = { scope: 'tenant' } | { scope: 'apiKey'; keyId: KeyId } | { scope: 'ip'; ipHex: IpHex };

/** An IP address as lowercase hex of its bytes (v4: 8 chars, v6: 32), safe inside a key. */
export type IpHex = string & { readonly __brand: 'IpHex' };

/**
 * Encodes an IPv4 or IPv6 address (an IPv4-mapped v6 address counts as v4).
 * @throws ValidationError `INVALID_ID` for anything else
 */
export function parseIpHex(address: string): IpHex {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  const ip = mapped ?? address;
  const version = isIP(ip);
  if (version === 4) {
    return ip
      .split('.')
      .map((octet) => Number(octet).toString(16).padStart(2, '0'))
      .join('') as IpHex;
  }
  if (version === 6) {
    const [head = '', tail = ''] = ip.split('::');
    const groups = (part: string): string[] => (part === '' ? [] : part.split(':'));
    const left = groups(head);
    const right = groups(tail);
    const lastRight = right.at(-1) ?? left.at(-1) ?? '';
    if (lastRight.includes('.')) {
      throw new ValidationError('INVALID_ID', 'embedded IPv4 in IPv6 is not supported as a client address');
    }
    const missing = 8 - left.length - right.length;
    const all = ip.includes('::') ? [...left, ...Array<string>(missing).fill('0'), ...right] : left;
    return all.map((group) => group.padStart(4, '0').toLowerCase()).join('') as IpHex;
  }
  throw new ValidationError('INVALID_ID', `invalid client address: ${JSON.stringify(address.slice(0, 64))}`);
}

function subjectSegment(subject: LimitSubject): string {
  switch (subject.scope) {
    case 'tenant':
      return '';
    case 'apiKey':
      return `:k:${subject.keyId}`;
    case 'ip':
      return `:i:${subject.ipHex}`;
  }
}

/**
 * `{s:<shard>}:t:<tenant>[:k:<keyId>|:i:<ipHex>]:b:v1:<limitId>[:p:<periodStartMs>]`:
 * one limit's bucket state. Period quotas carry their period's start, so a new
 * period is a new key and a reset can never apply twice.
 */
export function bucketKey(input: {
  shard: ShardId;
  tenant: TenantId;
  limitId: LimitId;
  subject?: LimitSubject;
  periodStartMs?: number;
  /** A whale tenant's part (see partOf). */
  part?: number | undefined;
}): string {
  return (
    bucketKeyHead(input.shard, input.tenant, input.subject ?? { scope: 'tenant' }, input.part) +
    bucketKeyTail(input.limitId, input.periodStartMs)
  );
}

/** The subject part of a bucket key, `{s:<shard>}:t:<tenant>[:u:<part>][:k:<keyId>|:i:<ipHex>]` (bucketKey = head + tail). */
export function bucketKeyHead(shard: ShardId, tenant: TenantId, subject: LimitSubject, part?: number): string {
  return bucketKeyHeadOf(tenantKeyPrefix(shard, tenant, part), subject);
}

/** The limit part of a bucket key, `:b:v1:<limitId>[:p:<periodStartMs>]` (bucketKey = head + tail). */
export function bucketKeyTail(limitId: LimitId, periodStartMs?: number): string {
  return `:b:v1:${limitId}${periodStartMs === undefined ? '' : `:p:${periodSegment(periodStartMs)}`}`;
}

/**
 * `{s:<shard>}:t:<tenant>[:u:<part>]`: what every key of one tenant (or whale part) starts with. A request builds it
 * once and passes it to the `...Of` builders below (the same keys as `requestRecordKey`, `admittedKey`, `bucketKeyHead`).
 */
export function tenantKeyPrefix(shard: ShardId, tenant: TenantId, part?: number): string {
  return `${tag(shard)}:${tenantSegment(tenant, part)}`;
}

/** What follows the tenant's prefix in `requestRecordKey`: `:r:v1:<requestId>`. */
export function requestRecordKeyTail(requestId: EventId): string {
  return `:r:v1:${requestId}`;
}

/** `requestRecordKey` from its tenant's `tenantKeyPrefix`. */
export function requestRecordKeyOf(prefix: string, requestId: EventId): string {
  return prefix + requestRecordKeyTail(requestId);
}

/** Admitted-counter tails by period start (a few periods are current at once; cleared when it grows). */
const ADMITTED_TAILS = new Map<number, string>();

/** What follows the tenant's prefix in `admittedKey`: `:a:v1:<periodStartMs>`. */
export function admittedKeyTail(periodStartMs: number): string {
  let tail = ADMITTED_TAILS.get(periodStartMs);
  if (tail === undefined) {
    tail = `:a:v1:${periodSegment(periodStartMs)}`;
    if (ADMITTED_TAILS.size >= 1_000) ADMITTED_TAILS.clear();
    ADMITTED_TAILS.set(periodStartMs, tail);
  }
  return tail;
}

/** `admittedKey` from its tenant's `tenantKeyPrefix`. */
export function admittedKeyOf(prefix: string, periodStartMs: number): string {
  return prefix + admittedKeyTail(periodStartMs);
}

/** `bucketKeyHead` from its tenant's `tenantKeyPrefix`. */
export function bucketKeyHeadOf(prefix: string, subject: LimitSubject): string {
  return subject.scope === 'tenant' ? prefix : prefix + subjectSegment(subject);
}

/** `{s:<shard>}:t:<tenant>[:u:<part>]:r:v1:<requestId>`: an admitted request's record (idempotency, settle). */
export function requestRecordKey(shard: ShardId, tenant: TenantId, requestId: EventId, part?: number): string {
  return requestRecordKeyOf(tenantKeyPrefix(shard, tenant, part), requestId);
}

/**
 * `{s:<shard>}:t:<tenant>[:u:<part>]:a:v1:<periodStartMs>`: cost admitted in a billing
 * period (read by the audit, which sums a whale tenant's parts).
 */
export function admittedKey(shard: ShardId, tenant: TenantId, periodStartMs: number, part?: number): string {
  return admittedKeyOf(tenantKeyPrefix(shard, tenant, part), periodStartMs);
}

/** A parsed admitted-counter key (see admittedKey). */
export interface AdmittedKeyParts {
  shard: ShardId;
  tenant: TenantId;
  periodStartMs: number;
  /** The whale tenant's part, or undefined for an unsplit tenant. */
  part: number | undefined;
}

const ADMITTED_KEY = /^\{s:(\d{1,5})\}:t:([a-z0-9][a-z0-9_-]{0,63})(?::u:(\d{1,2}))?:a:v1:(\d{1,16})$/;

/** Parses a key built by admittedKey; undefined for any other key. */
export function parseAdmittedKey(key: string): AdmittedKeyParts | undefined {
  const match = ADMITTED_KEY.exec(key);
  if (match === null) return undefined;
  const [, shard = '', tenant = '', part, period = ''] = match;
  const periodStartMs = Number(period);
  if (!Number.isSafeInteger(periodStartMs)) return undefined;
  return {
    shard: Number(shard) as ShardId,
    tenant: tenant as TenantId,
    periodStartMs,
    part: part === undefined ? undefined : Number(part),
  };
}

/**
 * A SCAN MATCH pattern of admitted-counter keys: of one shard (its hash tag), or of
 * every shard. It also matches keys of a tenant id containing `:a:v1:`, which cannot
 * exist (tenant ids have no `:`); callers still parse each key with parseAdmittedKey.
 */
export function admittedKeyPattern(shard?: ShardId): string {
  return `${shard === undefined ? '{s:*}' : tag(shard)}:t:*:a:v1:*`;
}

function periodSegment(periodStartMs: number): string {
  if (!Number.isSafeInteger(periodStartMs) || periodStartMs < 0) {
    throw new ValidationError('INVALID_INPUT', `period start must be a non-negative integer ms, got ${periodStartMs}`);
  }
  return String(periodStartMs);
}

/** Matches every key this module can build; tests check Redis holds nothing else. */
export const KEY_PATTERN = new RegExp(
  '^\\{s:\\d{1,5}\\}:(' +
    [
      'usage:v1',
      'dead:v1',
      'e:v1:[a-z0-9][a-z0-9._-]{0,127}',
      't:[a-z0-9][a-z0-9_-]{0,63}(:u:\\d{1,2})?(:k:[a-z0-9][a-z0-9_-]{0,63}|:i:([0-9a-f]{8}|[0-9a-f]{32}))?:b:v1:[a-z0-9][a-z0-9_-]{0,63}(:p:\\d{1,16})?',
      't:[a-z0-9][a-z0-9_-]{0,63}(:u:\\d{1,2})?:r:v1:[a-z0-9][a-z0-9._-]{0,127}',
      't:[a-z0-9][a-z0-9_-]{0,63}(:u:\\d{1,2})?:a:v1:\\d{1,16}',
    ].join('|') +
    ')$',
);
