/**
 * The plans and API keys an API instance serves, kept current without a
 * restart (DESIGN §4): a change in DynamoDB moves the config version, the
 * writer announces it on a Redis channel, and every instance reloads; a poll
 * of the version item catches any announcement that was lost. On any failure
 * the instance keeps what it has (last known good): a plan that no longer
 * validates keeps its previous version, and DynamoDB being down changes
 * nothing until it answers again.
 *
 * Suspended tenants (the admin API's) are loaded with the plans too: their keys answer 403.
 * Tenants' billing periods (their accounts') are loaded with the plans: a request is decided in its
 * tenant's calendar (`planForTenant`). An account's put moves the config version too.
 *
 * Keys are looked up one by one (by sha256, through the identity cache, which
 * is dropped whenever the version moves); the records seen are remembered so
 * known keys keep working while DynamoDB is down.
 */
import { Cluster } from 'ioredis';
import type { DeciderRedis } from '../../decider/index.js';
import type { PeriodSpec } from '../../decider/index.js';
import { DependencyError, type Logger, type PlanId, type TenantId } from '../../shared/index.js';
import type { ApiKeyRecord, KeyStore } from '../identity/key-store.js';
import { parsePlan, type Plan, type PlanStore } from '../plans.js';
import type { DynamoConfigStore } from './dynamo-config-store.js';
import type { RolloutShape } from '../usage/activity.js';
import { rolloutPlan, rolloutShape, type StoredRollout } from './rollouts.js';

/** Redis channel on which writers announce a new config version (the message is the version). */
export const CONFIG_CHANNEL = 'tollgate:config:v1';

/** Tells every API instance that the config version moved (they reload; a lost message is caught by their poll). */
export async function announceConfigVersion(redis: DeciderRedis, version: number): Promise<void> {
  try {
    await redis.publish(CONFIG_CHANNEL, String(version));
  } catch (error) {
    throw new DependencyError('REDIS_UNAVAILABLE', 'could not announce the config version', { cause: error });
  }
}

export interface LiveConfigOptions {
  store: DynamoConfigStore;
  logger: Logger;
  /** Where announcements arrive (a subscriber connection is duplicated from it). Without one, only the poll. */
  redis?: DeciderRedis;
  /** How often the version item is read, ms. @default 5000 */
  pollMs?: number;
  /** Key records remembered for DynamoDB outages. @default 100000 */
  maxRememberedKeys?: number;
  /** Plans' shadow rollouts (`rollouts.ts`): a running one's plan is served with its shadow limits until it ends. */
  rollouts?: { list(): Promise<StoredRollout[]> };
}

/** A plan that could not be loaded, and what the instance serves instead. */
export interface PlanProblem {
  planId: string;
  version: number;
  problem: string;
  /** The version still served (last known good), or null when the plan was never loaded. */
  servedVersion: number | null;
}

/** A running rollout as an instance serves it: the plan with its shadow limits, and its shape for the activity counters. */
interface ServedRollout {
  plan: Plan;
  endsAtMs: number;
  shape: RolloutShape;
}

export class LiveConfig implements PlanStore, KeyStore {
  private plans = new Map<string, Plan>();
  /** Plans under a running rollout: the enforced plan plus the shadow limits, served until `endsAtMs` (local clock). */
  private rollouts = new Map<string, ServedRollout>();
  private periods = new Map<string, PeriodSpec>();
  private suspended = new Set<string>();
  private problems: PlanProblem[] = [];
  private loadedVersion = -1;
  private readonly remembered = new Map<string, ApiKeyRecord>();
  private readonly maxRememberedKeys: number;
  private readonly listeners = new Set<(version: number) => void>();
  private subscriber: DeciderRedis | undefined;
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private wanted = -1;
  private isClosed = false;

  constructor(private readonly options: LiveConfigOptions) {
    this.maxRememberedKeys = options.maxRememberedKeys ?? 100_000;
  }

  /**
   * Loads the config once, then follows announcements and polls.
   * @throws DependencyError when the config cannot be read at all (nothing to serve yet)
   */
  async start(): Promise<void> {
    await this.reload(await this.options.store.readVersion());
    const pollMs = this.options.pollMs ?? 5_000;
    this.timer = setInterval(() => void this.check(), pollMs);
    this.timer.unref();
    if (this.options.redis !== undefined) {
      const source = this.options.redis;
      // the decider's connections fail fast (no offline queue, lazy); a subscriber waits for Redis and resubscribes
      const subscriber: DeciderRedis =
        source instanceof Cluster
          ? source.duplicate(undefined, { enableOfflineQueue: true, lazyConnect: false })
          : source.duplicate({ enableOfflineQueue: true, lazyConnect: false, maxRetriesPerRequest: null, autoResubscribe: true });
      this.subscriber = subscriber;
      subscriber.on('error', (error: unknown) => {
        this.options.logger.warn(
          { err: error instanceof Error ? error.message : String(error) },
          'config subscriber error; the poll still runs',
        );
      });
      // an announcement only says "look now": the version is read from DynamoDB, never taken from the message
      // (a stray or forged message must not be able to pin an instance to a version that does not exist)
      subscriber.on('message', (channel: string) => {
        if (channel === CONFIG_CHANNEL) void this.check();
      });
      // waited for at most a second: a Redis that is down at start must not hold the API back (ioredis
      // subscribes once it connects, and the poll covers the gap)
      const subscribed = subscriber.subscribe(CONFIG_CHANNEL).then(
        () => undefined,
        (error: unknown) => {
          this.options.logger.warn(
            { err: error instanceof Error ? error.message : String(error) },
            'config announcements unavailable; polling only',
          );
        },
      );
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([subscribed, new Promise<void>((resolveLater) => (timer = setTimeout(resolveLater, 1_000)))]);
      clearTimeout(timer);
    }
  }

  /** Stops following changes (what was loaded stays served). */
  close(): void {
    this.isClosed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.subscriber?.disconnect();
  }

  /** Called with the new version after each reload. */
  onChange(listener: (version: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get(planId: PlanId): Plan | undefined {
    const rollout = this.rollouts.get(planId);
    if (rollout !== undefined && Date.now() < rollout.endsAtMs) return rollout.plan;
    return this.plans.get(planId);
  }

  /** The running rollout of a plan as served now (what `ActivityRecorder` counts its decisions against), or undefined. */
  rolloutOf(planId: string): RolloutShape | undefined {
    const rollout = this.rollouts.get(planId);
    return rollout !== undefined && Date.now() < rollout.endsAtMs ? rollout.shape : undefined;
  }

  /** The tenant's billing period, as its account says (undefined without an account: its plans' periods apply). */
  tenantPeriod(tenant: TenantId): PeriodSpec | undefined {
    return this.periods.get(tenant);
  }

  /** Whether an admin suspended the tenant, as of the loaded version. */
  isSuspended(tenant: TenantId): boolean {
    return this.suspended.has(tenant);
  }

  /** The config version loaded (caches of key lookups key off it). */
  version(): number {
    return this.loadedVersion;
  }

  /** Plans that failed to load at the current version. */
  planProblems(): readonly PlanProblem[] {
    return this.problems;
  }

  /** @throws DependencyError when DynamoDB does not answer and the key was never seen */
  async findByHash(hash: Buffer): Promise<ApiKeyRecord | undefined> {
    const id = hash.toString('hex');
    let record: ApiKeyRecord | undefined;
    try {
      record = await this.options.store.findKeyByHash(hash);
    } catch (error) {
      const known = this.remembered.get(id);
      if (known !== undefined && error instanceof DependencyError) return known;
      throw error;
    }
    if (record === undefined) this.remembered.delete(id);
    else {
      this.remembered.delete(id);
      this.remembered.set(id, record);
      if (this.remembered.size > this.maxRememberedKeys) {
        const oldest = this.remembered.keys().next();
        if (oldest.done !== true) this.remembered.delete(oldest.value);
      }
    }
    return record;
  }

  /** Reads the version now and reloads if it moved (what the poll does). */
  async check(): Promise<void> {
    if (this.isClosed) return;
    let version: number;
    try {
      version = await this.options.store.readVersion();
    } catch (error) {
      this.options.logger.warn(
        { code: error instanceof DependencyError ? error.code : 'UNKNOWN' },
        'config version unreadable; serving the last loaded config',
      );
      return;
    }
    if (version !== this.loadedVersion) await this.follow(version);
  }

  /** Reloads at `version` (read from DynamoDB), one reload at a time (checks that land meanwhile are folded in). */
  private async follow(version: number): Promise<void> {
    // the latest version read wins (a config table that was recreated may count from 0 again)
    this.wanted = version;
    if (this.refreshing !== undefined) return this.refreshing;
    this.refreshing = (async () => {
      try {
        while (!this.isClosed && this.wanted !== this.loadedVersion) {
          const target = this.wanted;
          try {
            await this.reload(target);
          } catch (error) {
            this.options.logger.warn(
              { code: error instanceof DependencyError ? error.code : 'UNKNOWN' },
              'config reload failed; serving the last loaded config',
            );
            return;
          }
        }
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  /** The running rollouts over the plans loaded: each shadow plan built once per reload (caches key off it). */
  private async servedRollouts(plans: Map<string, Plan>): Promise<Map<string, ServedRollout>> {
    const served = new Map<string, ServedRollout>();
    for (const rollout of (await this.options.rollouts?.list()) ?? []) {
      const enforced = plans.get(rollout.planId);
      // a rollout of a version already enforced (or superseded) has nothing left to shadow
      if (rollout.status !== 'running' || enforced === undefined || enforced.version >= rollout.toVersion) continue;
      try {
        const next = parsePlan(JSON.parse(rollout.body) as unknown);
        served.set(rollout.planId, { plan: rolloutPlan(enforced, next), endsAtMs: rollout.endsAtMs, shape: rolloutShape(enforced, next) });
      } catch {
        this.options.logger.error({ code: 'CONFIG_INVALID', planId: rollout.planId }, 'stored rollout does not validate; not served');
      }
    }
    return served;
  }

  /** Loads every plan and account period; keeps the previous copy of any that does not validate. @throws DependencyError */
  private async reload(version: number): Promise<void> {
    const stored = await this.options.store.listPlans();
    const accounts = await this.options.store.listAccountPeriods();
    const suspended = await this.options.store.suspendedTenants();
    const periods = new Map<string, PeriodSpec>(accounts.periods);
    for (const tenant of accounts.invalid) {
      const previous = this.periods.get(tenant);
      if (previous !== undefined) periods.set(tenant, previous);
      this.options.logger.error({ code: 'CONFIG_INVALID', tenant }, 'stored account period does not validate; serving its last good one');
    }
    const next = new Map<string, Plan>();
    const problems: PlanProblem[] = [];
    for (const entry of stored) {
      if (entry.isValid) {
        next.set(entry.plan.id, entry.plan);
        continue;
      }
      const previous = this.plans.get(entry.planId);
      if (previous !== undefined) next.set(entry.planId, previous);
      problems.push({ planId: entry.planId, version: entry.version, problem: entry.problem, servedVersion: previous?.version ?? null });
      this.options.logger.error(
        {
          code: 'CONFIG_INVALID',
          planId: entry.planId,
          version: entry.version,
          servedVersion: previous?.version ?? null,
          problem: entry.problem,
        },
        'stored plan does not validate; serving its last good version',
      );
    }
    this.rollouts = await this.servedRollouts(next);
    this.plans = next;
    this.periods = periods;
    this.suspended = suspended;
    this.problems = problems;
    // the version read before the plans: a change landing in between is loaded by the next check
    this.loadedVersion = Math.max(version, 0);
    for (const listener of this.listeners) listener(this.loadedVersion);
  }
}
