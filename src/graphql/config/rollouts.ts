/**
 * Shadow rollouts of plans (`AdminRolloutStore`): a new version's changed limits run in `shadow` mode beside
 * the enforced version, each under its own id (`<limitId>-sv<version>`: its Redis state never mixes with the
 * enforced limit's), for a set time or until promoted or aborted. The API instances serve the enforced plan plus
 * those shadow limits while the rollout runs (`LiveConfig`, followed like every config change); the decider
 * reports what they would have denied (`shadowDenials`, taking nothing from a shadow limit a request does not
 * fit), and each API process counts them (`ActivityRecorder`, flushed to `tollgate:rollout:v1:<plan>:<version>`).
 *
 *   `plans` / `rollout#<planId>`   fromVersion, toVersion (N), body (S: the new version), startedAtMs, endsAtMs,
 *                                  status (S: running | promoted | aborted), endedAtMs (N, once ended)
 *
 * One rollout per plan at a time; each start, promotion and abort moves the config version and is audited in
 * its own transaction. Promotion is a plan apply of the new version (history, audit, propagation).
 */
import {
  GetItemCommand,
  TransactWriteItemsCommand,
  TransactionCanceledException,
  type AttributeValue,
  type DynamoDBClient,
  type TransactWriteItem,
} from '@aws-sdk/client-dynamodb';
import type { AdminRolloutStore, AuditInput, PlanRecord, RolloutLimitCount, RolloutView } from '../../admin/index.js';
import type { DeciderRedis, LimitSpec } from '../../decider/index.js';
import { ConflictError, DependencyError, NotFoundError, ValidationError } from '../../shared/index.js';
import { parsePlan, type Plan } from '../plans.js';
import { WOULD_ADMIT_FIELD, removedField, rolloutCountsKey, shadowLimitId, type RolloutShape } from '../usage/activity.js';
import { auditPut } from './audit-items.js';
import { configTableName, queryPlanItems, type DynamoConfigStore } from './dynamo-config-store.js';
import { parseAdminPlan, type DynamoPlanAdmin } from './plan-history.js';
import { seedShadowQuotas } from './rollout-seed.js';
import { configVersionBump } from './tenant-items.js';

type Item = Record<string, AttributeValue>;

/** Longest rollout: 30 days. */
export const MAX_ROLLOUT_MS = 30 * 86_400_000;

/** A stored rollout, as the API instances read it. */
export interface StoredRollout {
  planId: string;
  fromVersion: number;
  toVersion: number;
  body: string;
  status: 'running' | 'promoted' | 'aborted';
  startedAtMs: number;
  endsAtMs: number;
  endedAtMs: number | null;
  /** The ids (in the new version) of the limits run in shadow. */
  shadowed: string[];
  /** The ids of the enforced version's limits the new version removes. */
  removed: string[];
}

const sameLimit = (a: LimitSpec, b: LimitSpec): boolean => JSON.stringify(a) === JSON.stringify(b);

/** The limits of `next` that differ from `enforced`'s (new, or changed in any field). */
export function changedLimits(enforced: Plan, next: Plan): LimitSpec[] {
  return next.limits.filter((limit) => {
    const current = enforced.limits.find((candidate) => candidate.id === limit.id && candidate.scope === limit.scope);
    return current === undefined || !sameLimit(current, limit);
  });
}

/** The changed limits of `next` as shadow copies, each under its rollout-scoped id. */
export function shadowLimits(enforced: Plan, next: Plan): LimitSpec[] {
  return changedLimits(enforced, next).map((limit) => ({
    ...limit,
    id: shadowLimitId(limit.id, next.version) as LimitSpec['id'],
    mode: 'shadow' as const,
  }));
}

/** The rollout as the activity recorder reads its decisions (shadow copies with their new modes, kept and removed limits). */
export function rolloutShape(enforced: Plan, next: Plan): RolloutShape {
  const changed = new Set(changedLimits(enforced, next));
  const kept = (limit: LimitSpec): boolean => next.limits.some((candidate) => candidate.id === limit.id && candidate.scope === limit.scope);
  return {
    version: next.version,
    shadows: new Map([...changed].map((limit) => [shadowLimitId(limit.id, next.version), { limitId: limit.id, mode: limit.mode }])),
    unchanged: new Set(
      enforced.limits.filter((limit) => kept(limit) && next.limits.some((other) => sameLimit(other, limit))).map((limit) => limit.id),
    ),
    removed: new Set(enforced.limits.filter((limit) => !kept(limit)).map((limit) => limit.id)),
  };
}

/**
 * The plan an instance serves during a rollout: the enforced plan (its version is what usage events record)
 * with the new version's changed limits in shadow.
 * @throws ValidationError when the result is not a valid plan (too many limits, a shadow id too long or taken)
 */
export function rolloutPlan(enforced: Plan, next: Plan): Plan {
  return parsePlan({ ...enforced, limits: [...enforced.limits, ...shadowLimits(enforced, next)] });
}

function rolloutOf(item: Item): StoredRollout {
  const status = item['status']?.S;
  return {
    planId: (item['sk']?.S ?? '').slice('rollout#'.length),
    fromVersion: Number(item['fromVersion']?.N ?? '0'),
    toVersion: Number(item['toVersion']?.N ?? '0'),
    body: item['body']?.S ?? '',
    status: status === 'promoted' || status === 'aborted' ? status : 'running',
    startedAtMs: Number(item['startedAtMs']?.N ?? '0'),
    endsAtMs: Number(item['endsAtMs']?.N ?? '0'),
    endedAtMs: item['endedAtMs']?.N === undefined ? null : Number(item['endedAtMs'].N),
    shadowed: item['shadowed']?.S === undefined ? [] : (JSON.parse(item['shadowed'].S) as string[]),
    removed: item['removed']?.S === undefined ? [] : (JSON.parse(item['removed'].S) as string[]),
  };
}

/** Would-deny counts of a rollout's hash (`<limitId>` totals, `<limitId>#<hourStartMs>` per hour). */
export function rolloutCounts(fields: Record<string, string>, shadowIds: Map<string, string>): RolloutLimitCount[] {
  return [...shadowIds].map(([limitId, shadowId]) => {
    const hours: { hourStartMs: number; wouldDeny: number }[] = [];
    for (const [field, value] of Object.entries(fields)) {
      const [id, hour] = field.split('#');
      if (id === limitId && hour !== undefined) hours.push({ hourStartMs: Number(hour), wouldDeny: Number(value) });
    }
    hours.sort((a, b) => a.hourStartMs - b.hourStartMs);
    return { limitId, shadowId, wouldDeny: Number(fields[limitId] ?? '0'), hours };
  });
}

export class DynamoRollouts implements AdminRolloutStore {
  private readonly table: string;

  constructor(
    private readonly deps: {
      client: DynamoDBClient;
      config: DynamoConfigStore;
      plans: DynamoPlanAdmin;
      redis: DeciderRedis;
      /** The decider's logical shards (where a rollout's start seeds its shadow period quotas); absent: nothing is seeded. */
      shardCount?: number;
    },
    options: { tablePrefix: string },
  ) {
    this.table = configTableName(options.tablePrefix);
  }

  private async send<T>(what: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (error instanceof TransactionCanceledException) throw error;
      throw new DependencyError('DYNAMODB_UNAVAILABLE', `DynamoDB did not ${what}`, { cause: error });
    }
  }

  /** Every stored rollout (the API instances serve the running ones). @throws DependencyError */
  async list(): Promise<StoredRollout[]> {
    const items = await this.send('list the rollouts', () => queryPlanItems(this.deps.client, this.table, 'rollout#'));
    return items.map(rolloutOf);
  }

  private async stored(planId: string): Promise<StoredRollout | undefined> {
    const reply = await this.send('read the rollout', () =>
      this.deps.client.send(
        new GetItemCommand({ TableName: this.table, Key: { pk: { S: 'plans' }, sk: { S: `rollout#${planId}` } }, ConsistentRead: true }),
      ),
    );
    return reply.Item === undefined ? undefined : rolloutOf(reply.Item);
  }

  /** The enforced version of a plan. @throws NotFoundError, ValidationError (the stored plan does not validate) */
  private async enforced(planId: string): Promise<Plan> {
    const stored = (await this.deps.config.listPlans()).find((entry) => (entry.isValid ? entry.plan.id : entry.planId) === planId);
    if (stored === undefined) throw new NotFoundError(`plan ${planId} is not stored (apply it first; a rollout changes a plan)`);
    if (!stored.isValid) throw new ValidationError('INVALID_INPUT', `the stored plan ${planId} does not validate: ${stored.problem}`);
    return stored.plan;
  }

  async start(input: {
    raw: unknown;
    forMs: number;
    nowMs: number;
    audit: AuditInput;
  }): Promise<{ rollout: RolloutView; version: number }> {
    if (!Number.isSafeInteger(input.forMs) || input.forMs < 1_000 || input.forMs > MAX_ROLLOUT_MS)
      throw new ValidationError('INVALID_INPUT', `a rollout runs 1 s .. ${MAX_ROLLOUT_MS / 1_000} s`);
    const next = parseAdminPlan(input.raw);
    const enforced = await this.enforced(next.id);
    if (next.version <= enforced.version)
      throw new ValidationError('INVALID_INPUT', `plan ${next.id} is at version ${enforced.version}: a rollout needs a later version`);
    const shadows = changedLimits(enforced, next);
    const { removed } = rolloutShape(enforced, next);
    if (shadows.length === 0 && removed.size === 0)
      throw new ValidationError('INVALID_INPUT', `version ${next.version} changes no limit of plan ${next.id}`);
    const served = rolloutPlan(enforced, next);
    const rollout: StoredRollout = {
      planId: next.id,
      fromVersion: enforced.version,
      toVersion: next.version,
      body: JSON.stringify(next),
      status: 'running',
      startedAtMs: input.nowMs,
      endsAtMs: input.nowMs + input.forMs,
      endedAtMs: null,
      shadowed: shadows.map((limit) => limit.id),
      removed: [...removed],
    };
    const put: TransactWriteItem = {
      Put: {
        TableName: this.table,
        Item: {
          pk: { S: 'plans' },
          sk: { S: `rollout#${next.id}` },
          fromVersion: { N: String(rollout.fromVersion) },
          toVersion: { N: String(rollout.toVersion) },
          body: { S: rollout.body },
          status: { S: 'running' },
          startedAtMs: { N: String(rollout.startedAtMs) },
          endsAtMs: { N: String(rollout.endsAtMs) },
          shadowed: { S: JSON.stringify(rollout.shadowed) },
          removed: { S: JSON.stringify(rollout.removed) },
        },
        ConditionExpression: 'attribute_not_exists(pk) OR #status <> :running OR endsAtMs <= :now',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':running': { S: 'running' }, ':now': { N: String(input.nowMs) } },
      },
    };
    const after = { fromVersion: rollout.fromVersion, toVersion: rollout.toVersion, endsAtMs: rollout.endsAtMs };
    await this.transact('start the rollout', [put, auditPut(this.table, { ...input.audit, after }, input.nowMs)], () => {
      throw new ConflictError('CONFLICT', `plan ${next.id} already has a rollout running (promote or abort it first)`, {
        details: { reason: 'ROLLOUT_RUNNING', planId: next.id },
      });
    });
    await this.afterStart({ enforced, next, served, nowMs: input.nowMs });
    return { rollout: await this.view(rollout, input.nowMs), version: await this.deps.config.readVersion() };
  }

  /**
   * Once stored (before it is announced): the version's would-deny counts start at zero (a version rolled out again
   * after an abort does not add to its first run's), and the shadow period quotas start from the enforced usage of
   * their period (`rollout-seed.ts`). @throws DependencyError (the rollout runs; abort and start it again)
   */
  private async afterStart(input: { enforced: Plan; next: Plan; served: Plan; nowMs: number }): Promise<void> {
    const { redis, shardCount } = this.deps;
    try {
      await redis.del(rolloutCountsKey(input.next.id, input.next.version));
    } catch (error) {
      throw new DependencyError('REDIS_UNAVAILABLE', 'the rollout started but Redis did not reset its counts: abort it and start again', {
        cause: error,
      });
    }
    if (shardCount === undefined) return;
    const periods = (await this.deps.config.listAccountPeriods()).periods;
    await seedShadowQuotas({ client: this.deps.client, table: this.table, redis, shardCount, ...input, periods });
  }

  async get(planId: string, nowMs: number): Promise<RolloutView | undefined> {
    const rollout = await this.stored(planId);
    return rollout === undefined ? undefined : this.view(rollout, nowMs);
  }

  /** The rollout's end: `promoted` or `aborted`, only from running. */
  private endItem(rollout: StoredRollout, status: 'promoted' | 'aborted', nowMs: number): TransactWriteItem {
    return {
      Update: {
        TableName: this.table,
        Key: { pk: { S: 'plans' }, sk: { S: `rollout#${rollout.planId}` } },
        UpdateExpression: 'SET #status = :status, endedAtMs = :now',
        ConditionExpression: '#status = :running AND toVersion = :to',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: {
          ':status': { S: status },
          ':now': { N: String(nowMs) },
          ':running': { S: 'running' },
          ':to': { N: String(rollout.toVersion) },
        },
      },
    };
  }

  private async running(planId: string, nowMs: number): Promise<StoredRollout> {
    const rollout = await this.stored(planId);
    if (rollout === undefined) throw new NotFoundError(`plan ${planId} has no rollout`);
    if (rollout.status !== 'running' || nowMs >= rollout.endsAtMs) {
      throw new ConflictError(
        'CONFLICT',
        `the rollout of plan ${planId} has ended (${rollout.status === 'running' ? 'expired' : rollout.status})`,
        {
          details: { reason: 'ROLLOUT_ENDED', planId },
        },
      );
    }
    return rollout;
  }

  async promote(input: { planId: string; nowMs: number; audit: AuditInput }): Promise<{ plan: PlanRecord; version: number }> {
    const rollout = await this.running(input.planId, input.nowMs);
    try {
      return await this.deps.plans.applyPlan({
        raw: JSON.parse(rollout.body) as unknown,
        nowMs: input.nowMs,
        audit: input.audit,
        extraItems: [this.endItem(rollout, 'promoted', input.nowMs)],
      });
    } catch (error) {
      throw await this.promoteFailure(input.planId, error);
    }
  }

  /**
   * Why a promotion's transaction failed once its check had passed: the rollout ended meanwhile (another operator's
   * abort or promotion; its end item's condition, or the plan's version condition, failed) is a conflict naming the
   * end (`ROLLOUT_ENDED`), whatever condition DynamoDB reports first; anything else stays as it was.
   */
  private async promoteFailure(planId: string, error: unknown): Promise<unknown> {
    const isCancelled =
      error instanceof TransactionCanceledException ||
      (error instanceof DependencyError && error.cause instanceof TransactionCanceledException) ||
      (error instanceof ConflictError && error.details['reason'] === 'STALE_VERSION');
    if (!isCancelled) return error;
    const now = await this.stored(planId).catch(() => undefined);
    if (now === undefined || now.status === 'running') return error;
    return new ConflictError('CONFLICT', `the rollout of plan ${planId} has ended (${now.status})`, {
      details: { reason: 'ROLLOUT_ENDED', planId },
      cause: error,
    });
  }

  async abort(input: { planId: string; nowMs: number; audit: AuditInput }): Promise<{ rollout: RolloutView; version: number }> {
    const rollout = await this.running(input.planId, input.nowMs);
    const after = { toVersion: rollout.toVersion, status: 'aborted' };
    await this.transact(
      'abort the rollout',
      [this.endItem(rollout, 'aborted', input.nowMs), auditPut(this.table, { ...input.audit, after }, input.nowMs)],
      () => {
        throw new ConflictError('CONFLICT', `the rollout of plan ${input.planId} has ended`, {
          details: { reason: 'ROLLOUT_ENDED', planId: input.planId },
        });
      },
    );
    const ended: StoredRollout = { ...rollout, status: 'aborted', endedAtMs: input.nowMs };
    return { rollout: await this.view(ended, input.nowMs), version: await this.deps.config.readVersion() };
  }

  /** One transaction that also moves the config version; `onCondition` names a failed first condition. */
  private async transact(what: string, items: TransactWriteItem[], onCondition: () => never): Promise<void> {
    try {
      await this.send(what, () =>
        this.deps.client.send(new TransactWriteItemsCommand({ TransactItems: [...items, configVersionBump(this.table)] })),
      );
    } catch (error) {
      if (error instanceof TransactionCanceledException && error.CancellationReasons?.[0]?.Code === 'ConditionalCheckFailed') onCondition();
      throw error instanceof DependencyError
        ? error
        : new DependencyError('DYNAMODB_UNAVAILABLE', `DynamoDB did not ${what}`, { cause: error });
    }
  }

  /** The rollout with its would-deny counts (the activity counters' hash). @throws DependencyError */
  private async view(rollout: StoredRollout, nowMs: number): Promise<RolloutView> {
    const shadowIds = new Map(rollout.shadowed.map((limitId) => [limitId, shadowLimitId(limitId, rollout.toVersion)]));
    let fields: Record<string, string>;
    try {
      fields = await this.deps.redis.hgetall(rolloutCountsKey(rollout.planId, rollout.toVersion));
    } catch (error) {
      throw new DependencyError('REDIS_UNAVAILABLE', 'Redis did not answer the rollout counts', { cause: error });
    }
    const status = rollout.status === 'running' && nowMs >= rollout.endsAtMs ? 'expired' : rollout.status;
    const { planId, fromVersion, toVersion, startedAtMs, endsAtMs, endedAtMs } = rollout;
    return {
      planId,
      fromVersion,
      toVersion,
      startedAtMs,
      endsAtMs,
      endedAtMs,
      status,
      limits: rolloutCounts(fields, shadowIds),
      wouldAdmit: Number(fields[WOULD_ADMIT_FIELD] ?? '0'),
      removed: rollout.removed.map((limitId) => ({ limitId, wouldAdmit: Number(fields[removedField(limitId)] ?? '0') })),
    };
  }
}
