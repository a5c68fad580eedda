/**
 * Plans as versioned data for the admin API (`AdminPlanStore`): validated whole by `parsePlan` (every
 * problem with its path), stored through the config store (version must grow; accounts must agree), with
 * a history item of each applied version and the audit entry in the same transaction.
 *
 *   `plans` / `planversion#<planId>#<version, 10 digits>`   body (S), appliedAtMs (N)
 */
import { QueryCommand, type AttributeValue, type DynamoDBClient, type TransactWriteItem } from '@aws-sdk/client-dynamodb';
import type { AdminPlanStore, AuditInput, PlanRecord } from '../../admin/index.js';
import { DependencyError, ValidationError } from '../../shared/index.js';
import { parsePlan, type Plan } from '../plans.js';
import { reservedLimitIdProblems } from '../usage/activity.js';
import { auditPut } from './audit-items.js';
import { configTableName, type DynamoConfigStore } from './dynamo-config-store.js';

type Item = Record<string, AttributeValue>;

/**
 * A plan sent to the admin API: `parsePlan`, and no limit id taking the rollouts' shadow suffix (a tenant is never
 * shown a rollout's shadow copies, so a plan's own limit must never look like one).
 * @throws ValidationError `INVALID_INPUT`: `invalid plan:` then every problem, one per line (also in `details.problems`)
 */
export function parseAdminPlan(raw: unknown): Plan {
  const plan = parsePlan(raw);
  const problems = reservedLimitIdProblems(plan.limits);
  if (problems.length > 0) throw new ValidationError('INVALID_INPUT', `invalid plan:\n${problems.join('\n')}`, { details: { problems } });
  return plan;
}

const versionSk = (id: string, version: number): string => `planversion#${id}#${String(version).padStart(10, '0')}`;

export class DynamoPlanAdmin implements AdminPlanStore {
  private readonly table: string;

  constructor(
    private readonly client: DynamoDBClient,
    private readonly config: DynamoConfigStore,
    options: { tablePrefix: string },
  ) {
    this.table = configTableName(options.tablePrefix);
  }

  checkPlan(raw: unknown): { id: string; version: number; plan: Record<string, unknown> } {
    const plan = parseAdminPlan(raw);
    return { id: plan.id, version: plan.version, plan: plan as unknown as Record<string, unknown> };
  }

  async listPlans(): Promise<PlanRecord[]> {
    return (await this.config.listPlans()).map((stored) =>
      stored.isValid
        ? { id: stored.plan.id, version: stored.plan.version, body: JSON.stringify(stored.plan), problem: null, appliedAtMs: null }
        : { id: stored.planId, version: stored.version, body: '', problem: stored.problem, appliedAtMs: null },
    );
  }

  async getPlan(id: string): Promise<PlanRecord | undefined> {
    return (await this.listPlans()).find((plan) => plan.id === id);
  }

  async planVersions(id: string): Promise<PlanRecord[]> {
    const records: PlanRecord[] = [];
    let start: Item | undefined;
    do {
      let reply;
      try {
        reply = await this.client.send(
          new QueryCommand({
            TableName: this.table,
            KeyConditionExpression: 'pk = :plans AND begins_with(sk, :prefix)',
            ExpressionAttributeValues: { ':plans': { S: 'plans' }, ':prefix': { S: `planversion#${id}#` } },
            ConsistentRead: true,
            ...(start === undefined ? {} : { ExclusiveStartKey: start }),
          }),
        );
      } catch (error) {
        throw new DependencyError('DYNAMODB_UNAVAILABLE', 'DynamoDB did not list the plan versions', { cause: error });
      }
      for (const item of reply.Items ?? []) {
        records.push({
          id,
          version: Number((item['sk']?.S ?? '').split('#')[2]),
          body: item['body']?.S ?? '',
          problem: null,
          appliedAtMs: Number(item['appliedAtMs']?.N ?? '0'),
        });
      }
      start = reply.LastEvaluatedKey;
    } while (start !== undefined);
    return records;
  }

  /** `extraItems`: further writes of the same transaction (a rollout's promotion). */
  async applyPlan(input: {
    raw: unknown;
    nowMs: number;
    audit: AuditInput;
    extraItems?: TransactWriteItem[];
  }): Promise<{ plan: PlanRecord; version: number }> {
    const plan = parseAdminPlan(input.raw);
    const before = await this.getPlan(plan.id);
    const body = JSON.stringify(plan);
    const history = {
      Put: {
        TableName: this.table,
        Item: {
          pk: { S: 'plans' },
          sk: { S: versionSk(plan.id, plan.version) },
          body: { S: body },
          appliedAtMs: { N: String(input.nowMs) },
        },
      },
    };
    const audit = auditPut(
      this.table,
      { ...input.audit, ...(before === undefined ? {} : { before: { version: before.version } }), after: { version: plan.version } },
      input.nowMs,
    );
    const version = await this.config.putPlan(plan, input.nowMs, [history, audit, ...(input.extraItems ?? [])]);
    return { plan: { id: plan.id, version: plan.version, body, problem: null, appliedAtMs: input.nowMs }, version };
  }
}
