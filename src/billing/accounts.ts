/**
 * Tenant account settings: what the account workflow needs to close a period
 * and send warnings. Stored in the `<prefix>config` table:
 *
 *   pk `tenant#<tenant>`, sk `account`: billingPeriod (JSON PeriodSpec, the same model the
 *   decider's plans use), webhookUrl?, webhookSecret?, price (JSON PriceSpec), updatedAtMs.
 *
 * The billing period is the tenant's one source of truth for its periods: the API decides every
 * request in it (its period quotas take its anchor day and zone, src/graphql/plans.ts), so a put moves
 * the config version (pk `config`, sk `version`) in the same transaction, and every API instance
 * reloads the periods (`listBillingPeriods`).
 *
 * The webhook secret signs warning webhooks (HMAC-SHA256). It is never logged,
 * never part of a workflow's input or history (activities read it here), and
 * `AccountView` (what callers see) leaves it out. In production the table is
 * encrypted at rest; a KMS envelope is the next step (not built).
 */
import { GetItemCommand, ScanCommand, TransactWriteItemsCommand, type AttributeValue, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { MAX_PERIOD_SECONDS, isValidTimeZone, type PeriodSpec } from '../decider/index.js';
import { DependencyError, InvariantError, ValidationError, parseTenantId, type TenantId } from '../shared/index.js';
import { configTableName } from '../metering/index.js';
import { priceProblems, type PriceSpec } from './model/pricing.js';

export interface AccountSettings {
  tenant: TenantId;
  /** Billing period: unit, anchor day and IANA zone (the plan's `billingPeriod`). */
  billingPeriod: PeriodSpec;
  /** Where threshold warnings are POSTed (https, or http for loopback/dev); absent: warnings are recorded as skipped. */
  webhookUrl?: string;
  /** HMAC-SHA256 key of the webhook signature; required with a webhook URL. Never logged. */
  webhookSecret?: string;
  price: PriceSpec;
}

/** An account as shown (no secret). */
export type AccountView = Omit<AccountSettings, 'webhookSecret'> & { hasWebhookSecret: boolean };

/** Port: where account settings live. */
export interface AccountStore {
  get(tenant: TenantId): Promise<AccountSettings | undefined>;
  put(settings: AccountSettings, nowMs: number): Promise<void>;
  /** Every tenant with an account (the worker ensures their account workflows). */
  listTenants(): Promise<TenantId[]>;
}

const MIN_SECRET_CHARS = 16;

/** Every problem of a billing period (empty when valid). */
function periodProblems(billingPeriod: PeriodSpec | undefined): string[] {
  const problems: string[] = [];
  const period = billingPeriod as Partial<PeriodSpec> | undefined;
  if (period === undefined || !['second', 'day', 'month'].includes(String(period.unit))) {
    return ['billingPeriod.unit must be second, day or month'];
  }
  if (!Number.isInteger(period.anchorDay) || (period.anchorDay ?? 0) < 1 || (period.anchorDay ?? 0) > 31) {
    problems.push('billingPeriod.anchorDay must be an integer in 1..31');
  }
  if (typeof period.timeZone !== 'string' || !isValidTimeZone(period.timeZone))
    problems.push('billingPeriod.timeZone must be an IANA zone');
  const length = period.lengthSeconds ?? 1;
  if (period.unit === 'second' && (!Number.isInteger(length) || length < 1 || length > MAX_PERIOD_SECONDS)) {
    problems.push(`billingPeriod.lengthSeconds must be an integer in 1..${MAX_PERIOD_SECONDS}`);
  }
  return problems;
}

/** Every problem of a settings object (empty when valid). */
export function accountProblems(settings: AccountSettings): string[] {
  const problems: string[] = [];
  try {
    parseTenantId(settings.tenant);
  } catch {
    problems.push('tenant is not a tenant id');
  }
  problems.push(...periodProblems(settings.billingPeriod));
  if (settings.webhookUrl !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(settings.webhookUrl);
    } catch {
      problems.push('webhookUrl must be an absolute URL');
    }
    if (url !== undefined) {
      const isLoopback = url.hostname === 'localhost' || url.hostname.startsWith('127.') || url.hostname === '[::1]';
      if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback))
        problems.push('webhookUrl must use https (http only for loopback)');
      if (url.username !== '' || url.password !== '') problems.push('webhookUrl must not carry credentials');
    }
    if (settings.webhookSecret === undefined || settings.webhookSecret.length < MIN_SECRET_CHARS) {
      problems.push(`webhookSecret of at least ${MIN_SECRET_CHARS} characters is required with a webhookUrl`);
    }
  }
  if (settings.webhookSecret !== undefined && settings.webhookSecret.length > 256)
    problems.push('webhookSecret is longer than 256 characters');
  if (typeof settings.price !== 'object' || settings.price === null) problems.push('price is required');
  else problems.push(...priceProblems(settings.price));
  return problems;
}

/** @throws ValidationError `ACCOUNT_INVALID` listing every problem (`details.problems`) */
export function validateAccount(settings: AccountSettings): AccountSettings {
  const problems = accountProblems(settings);
  if (problems.length > 0) {
    throw new ValidationError('ACCOUNT_INVALID', `invalid account settings of ${String(settings.tenant)}:\n${problems.join('\n')}`, {
      details: { problems },
    });
  }
  return settings;
}

/** The settings without the secret (safe to log and to hand to a workflow). */
export function accountView(settings: AccountSettings): AccountView {
  const { webhookSecret, ...rest } = settings;
  return { ...rest, hasWebhookSecret: webhookSecret !== undefined };
}

const keyOf = (tenant: TenantId): Record<string, AttributeValue> => ({ pk: { S: `tenant#${tenant}` }, sk: { S: 'account' } });

const wrap = (error: unknown, what: string): DependencyError =>
  new DependencyError('DYNAMODB_UNAVAILABLE', `DynamoDB did not ${what}`, { cause: error });

function decode(item: Record<string, AttributeValue>): AccountSettings {
  try {
    return validateAccount({
      tenant: parseTenantId(item['tenant']?.S),
      billingPeriod: JSON.parse(item['billingPeriod']?.S ?? 'null') as PeriodSpec,
      price: JSON.parse(item['price']?.S ?? 'null') as PriceSpec,
      ...(item['webhookUrl']?.S === undefined ? {} : { webhookUrl: item['webhookUrl'].S }),
      ...(item['webhookSecret']?.S === undefined ? {} : { webhookSecret: item['webhookSecret'].S }),
    });
  } catch (error) {
    throw new InvariantError('a stored account is invalid', { cause: error });
  }
}

/** Accounts in the DynamoDB config table. */
export class DynamoAccountStore implements AccountStore {
  private readonly table: string;

  constructor(
    private readonly client: DynamoDBClient,
    options: { tablePrefix: string },
  ) {
    this.table = configTableName(options.tablePrefix);
  }

  /** @throws DependencyError `DYNAMODB_UNAVAILABLE` */
  async get(tenant: TenantId): Promise<AccountSettings | undefined> {
    let reply;
    try {
      reply = await this.client.send(new GetItemCommand({ TableName: this.table, Key: keyOf(tenant), ConsistentRead: true }));
    } catch (error) {
      throw wrap(error, 'read the account');
    }
    return reply.Item === undefined ? undefined : decode(reply.Item);
  }

  /**
   * Validates and stores (replaces) the settings. A changed billing period
   * applies from the account workflow's next period.
   * @throws ValidationError `ACCOUNT_INVALID`
   * @throws DependencyError `DYNAMODB_UNAVAILABLE`
   */
  async put(settings: AccountSettings, nowMs: number): Promise<void> {
    validateAccount(settings);
    const item: Record<string, AttributeValue> = {
      ...keyOf(settings.tenant),
      tenant: { S: settings.tenant },
      billingPeriod: { S: JSON.stringify(settings.billingPeriod) },
      price: { S: JSON.stringify(settings.price) },
      updatedAtMs: { N: String(nowMs) },
      ...(settings.webhookUrl === undefined ? {} : { webhookUrl: { S: settings.webhookUrl } }),
      ...(settings.webhookSecret === undefined ? {} : { webhookSecret: { S: settings.webhookSecret } }),
    };
    try {
      // the config version moves with the account: API instances reload the tenant's billing period
      await this.client.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            { Put: { TableName: this.table, Item: item } },
            {
              Update: {
                TableName: this.table,
                Key: { pk: { S: 'config' }, sk: { S: 'version' } },
                UpdateExpression: 'ADD version :one',
                ExpressionAttributeValues: { ':one': { N: '1' } },
              },
            },
          ],
        }),
      );
    } catch (error) {
      throw wrap(error, 'store the account');
    }
  }

  /** Every tenant with an account: a paginated Scan filtered on `sk = account` (fine for the config table's size). */
  async listTenants(): Promise<TenantId[]> {
    return [...(await this.scanAccounts('tenant')).keys()];
  }

  /**
   * Every account's billing period, by tenant (what the API decides requests in). A stored period that
   * does not validate is left out and named in `invalid` (the tenant then gets its plan's periods).
   * @throws DependencyError `DYNAMODB_UNAVAILABLE`
   */
  async listBillingPeriods(): Promise<{ periods: Map<TenantId, PeriodSpec>; invalid: TenantId[] }> {
    const periods = new Map<TenantId, PeriodSpec>();
    const invalid: TenantId[] = [];
    for (const [tenant, item] of await this.scanAccounts('tenant, billingPeriod')) {
      let period: PeriodSpec | undefined;
      try {
        period = JSON.parse(item['billingPeriod']?.S ?? 'null') as PeriodSpec;
      } catch {
        period = undefined;
      }
      const problems = period === undefined || period === null ? ['missing'] : periodProblems(period);
      if (problems.length === 0 && period !== undefined) periods.set(tenant, period);
      else invalid.push(tenant);
    }
    return { periods, invalid };
  }

  private async scanAccounts(projection: string): Promise<Map<TenantId, Record<string, AttributeValue>>> {
    const tenants = new Map<TenantId, Record<string, AttributeValue>>();
    let startKey: Record<string, AttributeValue> | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ScanCommand({
            TableName: this.table,
            FilterExpression: 'sk = :account',
            ExpressionAttributeValues: { ':account': { S: 'account' } },
            ProjectionExpression: projection,
            ConsistentRead: true,
            ...(startKey === undefined ? {} : { ExclusiveStartKey: startKey }),
          }),
        );
      } catch (error) {
        throw wrap(error, 'list the accounts');
      }
      for (const item of page.Items ?? []) tenants.set(parseTenantId(item['tenant']?.S), item);
      startKey = page.LastEvaluatedKey;
    } while (startKey !== undefined);
    return tenants;
  }
}
