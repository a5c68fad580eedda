/**
 * A rollout's shadow period quotas count from the enforced usage of the same period, not from zero: when the
 * rollout starts, each shadow copy of a period quota whose enforced twin (same id, scope and period) is in the
 * enforced version gets the twin's counters (current and next period), for every tenant holding a key of the plan,
 * so its would-deny counts say what enforcing the new version would do. Run once, after the rollout is stored and
 * before it is announced.
 *
 * How: the key names come from the decider's compiler (`compileRequest`: the layout lives in src/decider only), and
 * each twin's value is copied by Redis itself (`DEL shadow; COPY twin shadow`, one MULTI per tenant part: both keys
 * carry the tenant's shard tag; `COPY` keeps the value and its expiry). A period quota's value is its used units,
 * whatever its limit, so the copy is the enforced usage. The copy is atomic against the decide script: a decision
 * of an instance that loaded the rollout by its poll before the seed is replaced by the twin's count, which holds
 * that decision's cost too (every admitted request takes from the enforced twin).
 *
 * Not seeded: ip-scoped quotas (their keys cannot be listed without a scan of Redis), quotas whose period changes in
 * the new version (a new period counts from zero), and keys given the plan after the start. Units of a request
 * admitted before the seed and settled after it: its refund never reaches the shadow copy (which stays over by it).
 * Cost: one scan of the config table's key items and one Redis round trip per tenant (and per key for key-scoped
 * quotas, per part for whale tenants).
 */
import { ScanCommand, type AttributeValue, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { compileRequest, type DeciderRedis, type LimitSpec, type PeriodSpec } from '../../decider/index.js';
import { DependencyError, parseEventId, parseKeyId, parseTenantId, type TenantId } from '../../shared/index.js';
import { planForTenant, type Plan } from '../plans.js';
import { shadowLimitId } from '../usage/activity.js';

type Item = Record<string, AttributeValue>;

/** Tenants seeded at once. */
const PARALLEL = 16;

/** The shadow period quotas of `served` (a rollout's plan) that have an enforced twin with the same period. */
export function seededPairs(enforced: Plan, next: Plan): { twinId: string; shadowId: string; scope: LimitSpec['scope'] }[] {
  const pairs: { twinId: string; shadowId: string; scope: LimitSpec['scope'] }[] = [];
  for (const limit of next.limits) {
    if (limit.algorithm.kind !== 'period-quota' || limit.scope === 'ip') continue;
    const twin = enforced.limits.find((candidate) => candidate.id === limit.id && candidate.scope === limit.scope);
    if (twin?.algorithm.kind !== 'period-quota' || JSON.stringify(twin.algorithm.period) !== JSON.stringify(limit.algorithm.period))
      continue;
    if (JSON.stringify(twin) === JSON.stringify(limit)) continue; // unchanged: not shadowed
    pairs.push({ twinId: limit.id, shadowId: shadowLimitId(limit.id, next.version), scope: limit.scope });
  }
  return pairs;
}

/** Every (tenant, key id) holding a key of the plan (revoked keys too: harmless, and a key can be restored). */
async function keysOfPlan(client: DynamoDBClient, table: string, planId: string): Promise<Map<TenantId, string[]>> {
  const keys = new Map<TenantId, string[]>();
  let start: Item | undefined;
  do {
    const reply = await client.send(
      new ScanCommand({
        TableName: table,
        FilterExpression: 'sk = :apikey AND planId = :plan',
        ExpressionAttributeValues: { ':apikey': { S: 'apikey' }, ':plan': { S: planId } },
        ProjectionExpression: 'tenant, keyId',
        ConsistentRead: true,
        ...(start === undefined ? {} : { ExclusiveStartKey: start }),
      }),
    );
    for (const item of reply.Items ?? []) {
      const tenant = parseTenantId(item['tenant']?.S ?? '');
      const list = keys.get(tenant) ?? [];
      list.push(item['keyId']?.S ?? '');
      keys.set(tenant, list);
    }
    start = reply.LastEvaluatedKey;
  } while (start !== undefined);
  return keys;
}

/** A request id landing on each part of a whale tenant (the part is fnv1a32(id) mod subShards; found by trying). */
function partIds(subShards: number): string[] {
  if (subShards <= 1) return ['seed-0'];
  const seen = new Map<string, string>();
  for (let index = 0; seen.size < subShards && index < 100_000; index += 1) {
    const id = `seed-${index}`;
    const compiled = compileRequest(
      {
        tenant: parseTenantId('seed'),
        keyId: parseKeyId('seed'),
        requestId: parseEventId(id),
        cost: 0,
        operation: 'seed',
        limits: [],
        billingPeriod: { unit: 'day', anchorDay: 1, timeZone: 'UTC' },
        policyVersion: 0,
        subShards,
      },
      { shardCount: 16_384, localNowMs: 0 },
    );
    const part = String(compiled.part);
    if (!seen.has(part)) seen.set(part, id);
  }
  return [...seen.values()];
}

export interface SeedInput {
  client: DynamoDBClient;
  table: string;
  redis: DeciderRedis;
  shardCount: number;
  /** The rollout's plan: the enforced version plus the shadow copies (`rolloutPlan`). */
  served: Plan;
  enforced: Plan;
  next: Plan;
  /** Tenants' billing periods (their accounts'): a quota counts in its tenant's calendar. */
  periods: Map<TenantId, PeriodSpec>;
  nowMs: number;
}

/** Copies each tenant's twin counters into the shadow copies. @returns the tenants seeded. @throws DependencyError */
export async function seedShadowQuotas(input: SeedInput): Promise<number> {
  const pairs = seededPairs(input.enforced, input.next);
  if (pairs.length === 0) return 0;
  let tenants: Map<TenantId, string[]>;
  try {
    tenants = await keysOfPlan(input.client, input.table, input.served.id);
  } catch (error) {
    throw new DependencyError('DYNAMODB_UNAVAILABLE', 'DynamoDB did not list the keys of the plan', { cause: error });
  }
  const parts = partIds(input.served.subShards ?? 1);
  const queue = [...tenants];
  const worker = async (): Promise<void> => {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) await seedTenant(input, { pairs, parts, tenant: next });
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, queue.length) }, worker));
  return tenants.size;
}

async function seedTenant(
  input: SeedInput,
  job: { pairs: ReturnType<typeof seededPairs>; parts: string[]; tenant: [TenantId, string[]] },
): Promise<void> {
  const [tenant, keyIds] = job.tenant;
  const plan = planForTenant(input.served, input.periods.get(tenant));
  const byId = new Map(plan.limits.map((limit) => [limit.id as string, limit]));
  const multis: ReturnType<DeciderRedis['multi']>[] = [];
  for (const keyId of keyIds) {
    // tenant-scoped quotas once (with the first key), key-scoped ones per key
    const pairs = job.pairs.filter((pair) => pair.scope === 'apiKey' || keyId === keyIds[0]);
    const limits = pairs.flatMap((pair) => [byId.get(pair.twinId), byId.get(pair.shadowId)]).filter((limit) => limit !== undefined);
    if (limits.length === 0) continue;
    for (const requestId of job.parts) {
      const compiled = compileRequest(
        {
          tenant,
          keyId: parseKeyId(keyId),
          requestId: parseEventId(requestId),
          cost: 0,
          operation: 'seed',
          limits,
          billingPeriod: plan.billingPeriod,
          policyVersion: plan.version,
          ...(plan.subShards === undefined ? {} : { subShards: plan.subShards }),
        },
        { shardCount: input.shardCount, localNowMs: input.nowMs },
      );
      const multi = input.redis.multi();
      const model = compiled.model.limits;
      for (let index = 0; index + 1 < model.length; index += 2) {
        const twin = model[index];
        const shadow = model[index + 1];
        if (twin === undefined || shadow === undefined) continue;
        multi.del(shadow.key).copy(twin.key, shadow.key);
        if (twin.nextKey !== undefined && shadow.nextKey !== undefined) multi.del(shadow.nextKey).copy(twin.nextKey, shadow.nextKey);
      }
      multis.push(multi);
    }
  }
  try {
    for (const multi of multis) {
      const replies = await multi.exec();
      if (replies === null || replies.some(([error]) => error !== null)) throw new Error('the seed transaction failed');
    }
  } catch (error) {
    throw new DependencyError('REDIS_UNAVAILABLE', `Redis did not seed the shadow quotas of tenant ${tenant}`, { cause: error });
  }
}
