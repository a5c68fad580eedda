/**
 * Plans and API keys in DynamoDB (table `<prefix>config`), with one config
 * version that moves in the same transaction as every change, so an API
 * instance knows it is current by reading one item.
 *
 * Item layout (`pk` / `sk`):
 *   `config` / `version`          version (N): +1 on every change of a plan or key
 *   `plans` / `plan#<planId>`     version (N, the plan's own), body (S: the plan as JSON), updatedAtMs
 *   `plans` / `planversion#<planId>#<version, 10 digits>`   body, appliedAtMs: every version applied by the admin API
 *   `apikey#<sha256 hex>` / `apikey`   tenant, keyId, planId, isRevoked (BOOL), createdAtMs
 *   `tenant#<tenant>` / `apikey#<keyId>`   hash (S: sha256 hex): finds a key to revoke by its id
 *   `tenant#<tenant>` / `account`  the tenant's account (src/billing/accounts.ts; its put moves the version too):
 *                                  its billing period is the tenant's calendar (`listAccountPeriods`)
 *
 * The plain key is never stored: it is returned once by `addKey`.
 */
import {
  ConditionalCheckFailedException,
  GetItemCommand,
  QueryCommand,
  TransactWriteItemsCommand,
  TransactionCanceledException,
  type AttributeValue,
  type DynamoDBClient,
  type TransactWriteItem,
} from '@aws-sdk/client-dynamodb';
import {
  ConflictError,
  DependencyError,
  NotFoundError,
  ValidationError,
  parseKeyId,
  parsePlanId,
  parseTenantId,
} from '../../shared/index.js';
import { DynamoAccountStore } from '../../billing/index.js';
import type { PeriodSpec } from '../../decider/index.js';
import type { PlanId, TenantId } from '../../shared/index.js';
import { generateApiKey, hashApiKey } from '../identity/api-key.js';
import type { ApiKeyRecord } from '../identity/key-store.js';
import { accountPlanProblems, parsePlan, type Plan } from '../plans.js';
import { configVersionBump, listSuspendedTenants } from './tenant-items.js';

/** Physical name of the config table; must agree with infra/tables.ts. */
export function configTableName(prefix: string): string {
  return `${prefix}config`;
}

/** A stored plan as read: its parsed form, or why it could not be used. */
export type StoredPlan = { isValid: true; plan: Plan } | { isValid: false; planId: string; version: number; problem: string };

type Item = Record<string, AttributeValue>;

/** Every item of the `plans` partition whose sort key starts with `prefix` (`plan#`, `rollout#`), page after page, consistent. */
export async function queryPlanItems(client: DynamoDBClient, table: string, prefix: string): Promise<Item[]> {
  const items: Item[] = [];
  let start: Item | undefined;
  do {
    const reply = await client.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :plans AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: { ':plans': { S: 'plans' }, ':prefix': { S: prefix } },
        ConsistentRead: true,
        ...(start === undefined ? {} : { ExclusiveStartKey: start }),
      }),
    );
    items.push(...(reply.Items ?? []));
    start = reply.LastEvaluatedKey;
  } while (start !== undefined);
  return items;
}

const VERSION_KEY = { pk: { S: 'config' }, sk: { S: 'version' } };

export class DynamoConfigStore {
  private readonly table: string;
  private readonly accounts: DynamoAccountStore;

  constructor(
    private readonly client: DynamoDBClient,
    options: { tablePrefix: string },
  ) {
    this.table = configTableName(options.tablePrefix);
    this.accounts = new DynamoAccountStore(client, options);
  }

  /** Every account's billing period, by tenant; `invalid` names accounts whose stored period does not validate. @throws DependencyError */
  async listAccountPeriods(): Promise<{ periods: Map<TenantId, PeriodSpec>; invalid: TenantId[] }> {
    return this.accounts.listBillingPeriods();
  }

  /** A key's plan must bill by its tenant's account unit (`accountPlanProblems`); a plan not stored yet is not checked. */
  private async checkAccountAgrees(tenant: TenantId, planId: PlanId): Promise<void> {
    const account = await this.accounts.get(tenant);
    if (account === undefined) return;
    const reply = await this.send('read the plan', () =>
      this.client.send(
        new GetItemCommand({ TableName: this.table, Key: { pk: { S: 'plans' }, sk: { S: `plan#${planId}` } }, ConsistentRead: true }),
      ),
    );
    const stored = reply.Item === undefined ? undefined : storedPlan(reply.Item);
    if (stored?.isValid !== true) return;
    const problems = accountPlanProblems(account.billingPeriod, [stored.plan]);
    if (problems.length > 0) {
      throw new ValidationError(
        'ACCOUNT_INVALID',
        `the account of ${tenant} cannot take a key of plan ${planId}:\n${problems.join('\n')}`,
        {
          details: { problems },
        },
      );
    }
  }

  /** The plan ids of a tenant's keys (revoked ones too: a key can be restored). @throws DependencyError */
  async tenantPlanIds(tenant: TenantId): Promise<PlanId[]> {
    const planIds = new Set<PlanId>();
    let start: Item | undefined;
    do {
      const reply = await this.send('list the keys of a tenant', () =>
        this.client.send(
          new QueryCommand({
            TableName: this.table,
            KeyConditionExpression: 'pk = :tenant AND begins_with(sk, :prefix)',
            ExpressionAttributeValues: { ':tenant': { S: `tenant#${tenant}` }, ':prefix': { S: 'apikey#' } },
            ConsistentRead: true,
            ...(start === undefined ? {} : { ExclusiveStartKey: start }),
          }),
        ),
      );
      for (const item of reply.Items ?? []) {
        const record = await this.findKeyByHash(Buffer.from(item['hash']?.S ?? '', 'hex'));
        if (record !== undefined) planIds.add(record.planId);
      }
      start = reply.LastEvaluatedKey;
    } while (start !== undefined);
    return [...planIds];
  }

  private bumpVersion(): TransactWriteItem {
    return configVersionBump(this.table);
  }

  /** Tenants an admin suspended (`tenants` / `tenant#<id>`, status `suspended`): their keys answer 403. @throws DependencyError */
  async suspendedTenants(): Promise<Set<string>> {
    return this.send('list the tenants', () => listSuspendedTenants(this.client, this.table));
  }

  private async send<T>(what: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (error instanceof TransactionCanceledException || error instanceof ConditionalCheckFailedException) throw error;
      throw new DependencyError('DYNAMODB_UNAVAILABLE', `DynamoDB did not ${what}`, { cause: error });
    }
  }

  /** One transaction that also moves the config version; a cancellation is rethrown as is for the caller to name. */
  private async transact(what: string, items: TransactWriteItem[]): Promise<void> {
    await this.send(what, () => this.client.send(new TransactWriteItemsCommand({ TransactItems: [...items, this.bumpVersion()] })));
  }

  /** The config version (0 before the first change). @throws DependencyError */
  async readVersion(): Promise<number> {
    const reply = await this.send('read the config version', () =>
      this.client.send(new GetItemCommand({ TableName: this.table, Key: VERSION_KEY, ConsistentRead: true })),
    );
    return Number(reply.Item?.['version']?.N ?? '0');
  }

  /**
   * Stores a plan; its version must be greater than the stored one (plans are
   * versioned data: the version is recorded in every usage event). Returns the
   * new config version.
   * @throws ValidationError for an invalid plan (nothing written)
   * @throws ConflictError `CONFLICT` (reason `STALE_VERSION`) when the stored plan has this version or a later one
   * @throws DependencyError when DynamoDB fails
   */
  async putPlan(plan: Plan, nowMs: number, extraItems: TransactWriteItem[] = []): Promise<number> {
    const valid = parsePlan(plan);
    await this.checkAccountsAgree(valid);
    try {
      await this.transact('store the plan', [
        {
          Put: {
            TableName: this.table,
            Item: {
              pk: { S: 'plans' },
              sk: { S: `plan#${valid.id}` },
              version: { N: String(valid.version) },
              body: { S: JSON.stringify(valid) },
              updatedAtMs: { N: String(nowMs) },
            },
            ConditionExpression: 'attribute_not_exists(pk) OR version < :version',
            ExpressionAttributeValues: { ':version': { N: String(valid.version) } },
          },
        },
        ...extraItems,
      ]);
    } catch (error) {
      if (error instanceof TransactionCanceledException && error.CancellationReasons?.[0]?.Code === 'ConditionalCheckFailed') {
        throw new ConflictError('CONFLICT', `plan ${valid.id} already has version ${valid.version} or a later one`, {
          details: { reason: 'STALE_VERSION', planId: valid.id },
        });
      }
      throw error instanceof DependencyError
        ? error
        : new DependencyError('DYNAMODB_UNAVAILABLE', 'DynamoDB did not store the plan', { cause: error });
    }
    return this.readVersion();
  }

  /**
   * A plan whose billing unit changes must still agree with the account of every tenant holding one of its keys
   * (else that tenant's statements would read partitions its quotas never counted in). Checked only when the unit
   * changes; an account or key written concurrently is caught by their own checks.
   * @throws ValidationError `INVALID_INPUT` naming each tenant that disagrees
   */
  private async checkAccountsAgree(plan: Plan): Promise<void> {
    const previous = (await this.listPlans()).find((stored) => stored.isValid && stored.plan.id === plan.id);
    if (previous?.isValid !== true || previous.plan.billingPeriod.unit === plan.billingPeriod.unit) return;
    const problems: string[] = [];
    for (const [tenant, period] of (await this.listAccountPeriods()).periods) {
      if (!(await this.tenantPlanIds(tenant)).includes(plan.id)) continue;
      problems.push(...accountPlanProblems(period, [plan]).map((problem) => `account of ${tenant}: ${problem}`));
    }
    if (problems.length > 0) {
      throw new ValidationError('INVALID_INPUT', `plan ${plan.id} cannot change its billing unit:\n${problems.join('\n')}`, {
        details: { problems },
      });
    }
  }

  /** Every stored plan, each parsed on its own (one bad plan never hides the others). @throws DependencyError */
  async listPlans(): Promise<StoredPlan[]> {
    const items = await this.send('list the plans', () => queryPlanItems(this.client, this.table, 'plan#'));
    return items.map(storedPlan);
  }

  /**
   * Creates an API key for a tenant and returns the plain key: the only time it
   * exists outside the caller's hands. Only its sha256 is stored.
   * @throws ValidationError for bad ids; `ACCOUNT_INVALID` when the tenant's account bills by another unit than the plan
   * @throws ConflictError `CONFLICT` (reason `KEY_EXISTS`) when the tenant already has a key with this id
   * @throws DependencyError when DynamoDB fails
   */
  async addKey(input: {
    tenant: string;
    keyId: string;
    planId: string;
    nowMs: number;
    key?: string;
    /** Written in the same transaction (the admin API's audit entry, a rotated key's expiry). */
    extraItems?: TransactWriteItem[];
  }): Promise<{ key: string; version: number }> {
    const tenant = parseTenantId(input.tenant);
    const keyId = parseKeyId(input.keyId);
    const planId = parsePlanId(input.planId);
    await this.checkAccountAgrees(tenant, planId);
    const key = input.key ?? generateApiKey();
    const hash = hashApiKey(key).toString('hex');
    try {
      await this.transact('store the API key', [
        {
          Put: {
            TableName: this.table,
            Item: {
              pk: { S: `apikey#${hash}` },
              sk: { S: 'apikey' },
              tenant: { S: tenant },
              keyId: { S: keyId },
              planId: { S: planId },
              isRevoked: { BOOL: false },
              createdAtMs: { N: String(input.nowMs) },
            },
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
        {
          Put: {
            TableName: this.table,
            Item: { pk: { S: `tenant#${tenant}` }, sk: { S: `apikey#${keyId}` }, hash: { S: hash } },
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
        ...(input.extraItems ?? []),
      ]);
    } catch (error) {
      if (error instanceof TransactionCanceledException) {
        throw new ConflictError('CONFLICT', `tenant ${tenant} already has a key ${keyId} (or the key is not new)`, {
          details: { reason: 'KEY_EXISTS', tenant, keyId },
        });
      }
      throw error instanceof DependencyError
        ? error
        : new DependencyError('DYNAMODB_UNAVAILABLE', 'DynamoDB did not store the API key', { cause: error });
    }
    return { key, version: await this.readVersion() };
  }

  /**
   * Revokes a tenant's key (it answers 401 `API_KEY_REVOKED` from then on). Revoking twice is harmless.
   * @throws NotFoundError when the tenant has no such key
   * @throws DependencyError when DynamoDB fails
   */
  async revokeKey(input: { tenant: string; keyId: string; extraItems?: TransactWriteItem[] }): Promise<number> {
    const tenant = parseTenantId(input.tenant);
    const keyId = parseKeyId(input.keyId);
    const index = await this.send('find the API key', () =>
      this.client.send(
        new GetItemCommand({
          TableName: this.table,
          Key: { pk: { S: `tenant#${tenant}` }, sk: { S: `apikey#${keyId}` } },
          ConsistentRead: true,
        }),
      ),
    );
    const hash = index.Item?.['hash']?.S;
    if (hash === undefined) throw new NotFoundError(`tenant ${tenant} has no key ${keyId}`, { details: { tenant, keyId } });
    try {
      await this.transact('revoke the API key', [
        {
          Update: {
            TableName: this.table,
            Key: { pk: { S: `apikey#${hash}` }, sk: { S: 'apikey' } },
            UpdateExpression: 'SET isRevoked = :yes',
            ConditionExpression: 'attribute_exists(pk) AND tenant = :tenant',
            ExpressionAttributeValues: { ':yes': { BOOL: true }, ':tenant': { S: tenant } },
          },
        },
        ...(input.extraItems ?? []),
      ]);
    } catch (error) {
      if (error instanceof TransactionCanceledException)
        throw new NotFoundError(`tenant ${tenant} has no key ${keyId}`, { details: { tenant, keyId } });
      throw error;
    }
    return this.readVersion();
  }

  /** The key record whose sha256 is `hash`, or undefined. @throws DependencyError */
  async findKeyByHash(hash: Buffer): Promise<ApiKeyRecord | undefined> {
    if (hash.length !== 32) return undefined;
    const reply = await this.send('look up the API key', () =>
      this.client.send(
        new GetItemCommand({ TableName: this.table, Key: { pk: { S: `apikey#${hash.toString('hex')}` }, sk: { S: 'apikey' } } }),
      ),
    );
    const item = reply.Item;
    if (item === undefined) return undefined;
    try {
      return {
        tenant: parseTenantId(item['tenant']?.S),
        keyId: parseKeyId(item['keyId']?.S),
        planId: parsePlanId(item['planId']?.S),
        hash: Buffer.from(hash),
        isRevoked: item['isRevoked']?.BOOL !== false,
        ...(item['expiresAtMs']?.N === undefined ? {} : { expiresAtMs: Number(item['expiresAtMs'].N) }),
      };
    } catch (error) {
      // a damaged record never authenticates anyone
      throw new DependencyError('DEPENDENCY_FAILED', 'an API key record in DynamoDB is damaged', { cause: error });
    }
  }
}

function storedPlan(item: Item): StoredPlan {
  const planId = (item['sk']?.S ?? '').slice('plan#'.length);
  const version = Number(item['version']?.N ?? 'NaN');
  let body: unknown;
  try {
    body = JSON.parse(item['body']?.S ?? '');
  } catch {
    return { isValid: false, planId, version, problem: 'the stored body is not JSON' };
  }
  try {
    const plan = parsePlan(body);
    if (plan.id !== planId || plan.version !== version) {
      return { isValid: false, planId, version, problem: `the body says plan ${plan.id} v${plan.version}, the item ${planId} v${version}` };
    }
    return { isValid: true, plan };
  } catch (error) {
    return { isValid: false, planId, version, problem: error instanceof Error ? error.message : String(error) };
  }
}
