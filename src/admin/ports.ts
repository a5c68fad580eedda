/**
 * What the admin API runs on, as ports: the API process implements them over the config table
 * (`src/graphql/config/admin-store.ts`) and hands them in, so this folder stays below the edge.
 *
 * Every change carries its audit entry, written in the same DynamoDB transaction as the change where the
 * store can (tokens, tenants, keys), and the config version moves with every change an API instance serves.
 */
import type { AccountSettings, AccountView } from '../billing/index.js';

/** Who made a change: the admin token's id (never the token). */
export interface AdminActor {
  tokenId: string;
}

export interface AdminTokenRecord {
  tokenId: string;
  isRevoked: boolean;
  createdAtMs: number;
}

export type TenantStatus = 'active' | 'suspended';

export interface TenantRecord {
  id: string;
  status: TenantStatus;
  /** The plan a key gets when none is named at its creation. */
  planId: string | null;
  createdAtMs: number;
  updatedAtMs: number;
}

/** An API key as listed: never the key, a fingerprint of its hash. */
export interface KeyView {
  tenant: string;
  keyId: string;
  planId: string;
  /** The first 12 hex digits of the key's sha256. */
  fingerprint: string;
  createdAtMs: number;
  isRevoked: boolean;
  /** A rotated key's end of overlap, epoch ms (null: no end). */
  expiresAtMs: number | null;
}

/** What an audit entry says of a change (the store stamps it with an id and the time). */
export interface AuditInput {
  tokenId: string;
  /** e.g. `tenant.suspend`, `key.rotate`. */
  action: string;
  /** What was changed, e.g. `tenant/acme`, `key/acme/k1`. */
  target: string;
  before?: unknown;
  after?: unknown;
}

export interface AuditEntry {
  id: string;
  tokenId: string;
  action: string;
  target: string;
  /** JSON, or null (created / deleted). */
  before: string | null;
  after: string | null;
  atMs: number;
}

/** One page of a listing and the cursor of the next (null: the last page). */
export interface Page<T> {
  items: T[];
  cursor: string | null;
}

export interface AuditFilter {
  tokenId?: string;
  action?: string;
  /** Entries whose target starts with this (e.g. `tenant/acme`, or `key/acme/` for every key of acme). */
  targetPrefix?: string;
  first: number;
  after?: string;
}

export interface AdminStore {
  /** The token whose sha256 is `hash` (a consistent read: a revocation holds at once). */
  findToken(hash: Buffer): Promise<AdminTokenRecord | undefined>;
  /** @throws ConflictError when the id is taken */
  createToken(input: { tokenId: string; hash: Buffer; nowMs: number; audit: AuditInput | null }): Promise<void>;
  /** @throws NotFoundError */
  revokeToken(input: { tokenId: string; nowMs: number; audit: AuditInput }): Promise<AdminTokenRecord>;
  listTokens(): Promise<AdminTokenRecord[]>;
  /** @throws ConflictError when the tenant exists */
  createTenant(input: {
    tenant: string;
    planId: string | null;
    nowMs: number;
    audit: AuditInput;
  }): Promise<{ tenant: TenantRecord; version: number }>;
  getTenant(tenant: string): Promise<TenantRecord | undefined>;
  listTenants(filter: { status?: TenantStatus; planId?: string; first: number; after?: string }): Promise<Page<TenantRecord>>;
  /** @throws NotFoundError */
  setTenantStatus(input: {
    tenant: string;
    status: TenantStatus;
    nowMs: number;
    audit: AuditInput;
  }): Promise<{ tenant: TenantRecord; version: number }>;
  /** The plain key is returned once. @throws ConflictError, ValidationError */
  createKey(input: {
    tenant: string;
    keyId: string;
    planId: string;
    nowMs: number;
    audit: AuditInput;
  }): Promise<{ key: string; version: number }>;
  listKeys(tenant: string): Promise<KeyView[]>;
  /** @throws NotFoundError */
  revokeKey(input: { tenant: string; keyId: string; nowMs: number; audit: AuditInput }): Promise<number>;
  /** A new key of the same plan; the old one works until `nowMs + overlapMs`. @throws NotFoundError, ConflictError */
  rotateKey(input: {
    tenant: string;
    keyId: string;
    newKeyId: string;
    overlapMs: number;
    nowMs: number;
    audit: AuditInput;
  }): Promise<{ key: string; version: number; expiresAtMs: number }>;
  /** An audit entry of its own (changes whose store writes are not the config table's). */
  appendAudit(input: AuditInput & { nowMs: number }): Promise<void>;
  listAudit(filter: AuditFilter): Promise<Page<AuditEntry>>;
  /** Validated against the plans of the tenant's keys. @throws ValidationError `ACCOUNT_INVALID` */
  putAccount(settings: AccountSettings, nowMs: number): Promise<number>;
  getAccount(tenant: string): Promise<AccountView | undefined>;
}

/** A plan as the admin API shows it: its JSON body, or why the stored one does not validate. */
export interface PlanRecord {
  id: string;
  version: number;
  /** The plan as JSON (empty when the stored body is unreadable). */
  body: string;
  /** Why the stored plan does not validate (null: it does). */
  problem: string | null;
  /** When this version was applied, epoch ms (null: not known, e.g. stored before the admin API). */
  appliedAtMs: number | null;
}

/** Plans as versioned data (the API process implements it over the config table). */
export interface AdminPlanStore {
  /**
   * The plan, validated whole.
   * @throws ValidationError `INVALID_INPUT`: every problem, with its path (`details.problems`)
   */
  checkPlan(raw: unknown): { id: string; version: number; plan: Record<string, unknown> };
  /** Every stored plan (its current version). */
  listPlans(): Promise<PlanRecord[]>;
  /** The current version of one plan. */
  getPlan(id: string): Promise<PlanRecord | undefined>;
  /** Every version applied through the admin API, oldest first. */
  planVersions(id: string): Promise<PlanRecord[]>;
  /**
   * Stores a new version (greater than the stored one) with its history entry and audit entry, in one transaction.
   * @throws ValidationError (every problem), ConflictError `CONFLICT` (reason STALE_VERSION)
   */
  applyPlan(input: { raw: unknown; nowMs: number; audit: AuditInput }): Promise<{ plan: PlanRecord; version: number }>;
}

/** A plan rollout's state: `expired` is a running one whose time is up (its shadow limits are no longer served). */
export type RolloutStatus = 'running' | 'expired' | 'promoted' | 'aborted';

/** What one shadow limit would have denied during a rollout. */
export interface RolloutLimitCount {
  /** The limit's id in the new version. */
  limitId: string;
  /** The id its shadow copy runs under (its own state, never the enforced limit's). */
  shadowId: string;
  wouldDeny: number;
  /** Per UTC hour (start, epoch ms), oldest first; hours without a would-deny are left out. */
  hours: { hourStartMs: number; wouldDeny: number }[];
}

/** A new plan version's changed limits, run in `shadow` mode beside the enforced version. */
export interface RolloutView {
  planId: string;
  fromVersion: number;
  toVersion: number;
  status: RolloutStatus;
  startedAtMs: number;
  endsAtMs: number;
  endedAtMs: number | null;
  limits: RolloutLimitCount[];
  /** Requests the enforced version refused (denied or deferred) that the new version would have admitted. */
  wouldAdmit: number;
  /**
   * The limits the new version removes, each with the refused requests it was among the refusing limits of and that
   * the new version would have admitted (a request refused by two removed limits counts for both).
   */
  removed: { limitId: string; wouldAdmit: number }[];
}

/** Shadow rollouts of plans (the API process implements it over the config table and the activity counters). */
export interface AdminRolloutStore {
  /**
   * Starts running the new version's changed limits in shadow beside the enforced version, for `forMs`.
   * @throws ValidationError (an invalid plan, no changed limit, a version not above the enforced one), ConflictError (one is running)
   */
  start(input: { raw: unknown; forMs: number; nowMs: number; audit: AuditInput }): Promise<{ rollout: RolloutView; version: number }>;
  /** The plan's latest rollout with its would-deny counts, or undefined. */
  get(planId: string, nowMs: number): Promise<RolloutView | undefined>;
  /** The new version becomes the enforced one (a plan apply); the rollout ends. @throws NotFoundError, ConflictError */
  promote(input: { planId: string; nowMs: number; audit: AuditInput }): Promise<{ plan: PlanRecord; version: number }>;
  /** The shadow limits are removed; the enforced version stays. @throws NotFoundError, ConflictError */
  abort(input: { planId: string; nowMs: number; audit: AuditInput }): Promise<{ rollout: RolloutView; version: number }>;
}

/** A plan as one API instance serves it: the enforced version, plus a running rollout's shadow limits. */
export interface ServedPlanView {
  id: string;
  version: number;
  limits: { id: string; mode: string }[];
  /** The version of the running rollout served beside it (null: none). */
  rolloutVersion: number | null;
}

/** What the admin API's `operations` field shows (operations.ts), read by the API process. */
export interface OperationsView {
  pump: { unacknowledged: number; lagSeconds: number; deadLetters: number; streams: number };
  audit: { finishedAtMs: number; audited: number; drifting: number; absoluteDrift: number; unsettled: number } | null;
  breaker: string;
  spool: { entries: number; oldestAgeSeconds: number };
  decisions: { kind: string; limit: string; count: number }[];
}

/** Tenants ranked by admitted units (the admin API's `topConsumers`), read by the API process. */
export interface TopConsumersView {
  window: 'PERIOD' | 'LAST_24_HOURS';
  fromMs: number;
  toMs: number;
  totalUnits: number;
  tenants: number;
  items: { tenant: string; units: number }[];
}

/** Fleet-wide refusals per minute and degraded-mode periods (the admin API's `operations { fleet }`). */
export interface FleetView {
  fromMs: number;
  toMs: number;
  minutes: { minuteStartMs: number; kind: string; limit: string; count: number }[];
  degraded: { instance: string; fromMs: number; toMs: number | null; states: string[] }[];
}
