/**
 * The admin API's store (`AdminStore`, src/admin/ports.ts) over the config table. Each change and its
 * audit entry are one transaction, and the config version moves with every change an API instance
 * serves (tenants' statuses, keys), so announcement and poll carry it to every instance.
 *
 * Items (besides the config store's, see dynamo-config-store.ts and tenant-items.ts):
 *   `admintoken#<sha256 hex>` / `admintoken`   tokenId, isRevoked (BOOL), createdAtMs
 *   `admintokens` / `token#<tokenId>`         hash (S: sha256 hex), createdAtMs: finds a token by its id
 *   `audit` / `<atMs, 15 digits>#<random>`     tokenId, action, target, before (S JSON), after (S JSON), atMs: append-only
 *   `apikey#<sha256 hex>` / `apikey`           + expiresAtMs (N) once the key was rotated
 */
import {
  GetItemCommand,
  QueryCommand,
  TransactWriteItemsCommand,
  TransactionCanceledException,
  type AttributeValue,
  type DynamoDBClient,
  type TransactWriteItem,
} from '@aws-sdk/client-dynamodb';
import type {
  AdminStore,
  AdminTokenRecord,
  AuditEntry,
  AuditFilter,
  AuditInput,
  KeyView,
  Page,
  TenantRecord,
  TenantStatus,
} from '../../admin/index.js';
import { DynamoAccountStore, accountView, type AccountSettings, type AccountView } from '../../billing/index.js';
import {
  ConflictError,
  DependencyError,
  NotFoundError,
  ValidationError,
  parseKeyId,
  parsePlanId,
  parseTenantId,
} from '../../shared/index.js';
import { keyFingerprint } from '../identity/api-key.js';
import { putAccountSettings } from './account-settings.js';
import { configTableName, type DynamoConfigStore } from './dynamo-config-store.js';
import { auditPut, listAudit } from './audit-items.js';
import { readTenantPage } from './tenant-page.js';
import { configVersionBump, tenantItemKey } from './tenant-items.js';

type Item = Record<string, AttributeValue>;

const tokenKey = (hashHex: string): Item => ({ pk: { S: `admintoken#${hashHex}` }, sk: { S: 'admintoken' } });
const tokenIndexKey = (tokenId: string): Item => ({ pk: { S: 'admintokens' }, sk: { S: `token#${tokenId}` } });

export function tenantOf(item: Item): TenantRecord {
  return {
    id: (item['sk']?.S ?? '').slice('tenant#'.length),
    status: item['status']?.S === 'suspended' ? 'suspended' : 'active',
    planId: item['planId']?.S ?? null,
    createdAtMs: Number(item['createdAtMs']?.N ?? '0'),
    updatedAtMs: Number(item['updatedAtMs']?.N ?? '0'),
  };
}

export class DynamoAdminStore implements AdminStore {
  private readonly table: string;
  private readonly accounts: DynamoAccountStore;

  constructor(
    private readonly client: DynamoDBClient,
    private readonly config: DynamoConfigStore,
    options: { tablePrefix: string },
  ) {
    this.table = configTableName(options.tablePrefix);
    this.accounts = new DynamoAccountStore(client, options);
  }

  private async send<T>(what: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (error instanceof TransactionCanceledException) throw error;
      throw new DependencyError('DYNAMODB_UNAVAILABLE', `DynamoDB did not ${what}`, { cause: error });
    }
  }

  private async get(what: string, key: Item): Promise<Item | undefined> {
    const reply = await this.send(what, () =>
      this.client.send(new GetItemCommand({ TableName: this.table, Key: key, ConsistentRead: true })),
    );
    return reply.Item;
  }

  private auditPut(input: AuditInput, nowMs: number): TransactWriteItem {
    return auditPut(this.table, input, nowMs);
  }

  /** One transaction; `conflict` names a cancelled one (a condition failed). */
  private async transact(what: string, items: TransactWriteItem[], conflict: () => Error): Promise<void> {
    try {
      await this.send(what, () => this.client.send(new TransactWriteItemsCommand({ TransactItems: items })));
    } catch (error) {
      if (error instanceof TransactionCanceledException) throw conflict();
      throw error;
    }
  }

  async findToken(hash: Buffer): Promise<AdminTokenRecord | undefined> {
    if (hash.length !== 32) return undefined;
    const item = await this.get('look up the admin token', tokenKey(hash.toString('hex')));
    if (item === undefined) return undefined;
    return {
      tokenId: item['tokenId']?.S ?? '',
      isRevoked: item['isRevoked']?.BOOL !== false,
      createdAtMs: Number(item['createdAtMs']?.N ?? '0'),
    };
  }

  async createToken(input: { tokenId: string; hash: Buffer; nowMs: number; audit: AuditInput | null }): Promise<void> {
    const tokenId = parseKeyId(input.tokenId);
    const hashHex = input.hash.toString('hex');
    const created = { N: String(input.nowMs) };
    await this.transact(
      'store the admin token',
      [
        {
          Put: {
            TableName: this.table,
            Item: { ...tokenKey(hashHex), tokenId: { S: tokenId }, isRevoked: { BOOL: false }, createdAtMs: created },
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
        {
          Put: {
            TableName: this.table,
            Item: { ...tokenIndexKey(tokenId), hash: { S: hashHex }, createdAtMs: created },
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
        ...(input.audit === null ? [] : [this.auditPut(input.audit, input.nowMs)]),
      ],
      () => new ConflictError('CONFLICT', `an admin token ${tokenId} exists`, { details: { reason: 'TOKEN_EXISTS', tokenId } }),
    );
  }

  async revokeToken(input: { tokenId: string; nowMs: number; audit: AuditInput }): Promise<AdminTokenRecord> {
    const index = await this.get('find the admin token', tokenIndexKey(input.tokenId));
    const hashHex = index?.['hash']?.S;
    if (hashHex === undefined) throw new NotFoundError(`no admin token ${input.tokenId}`, { details: { tokenId: input.tokenId } });
    await this.transact(
      'revoke the admin token',
      [
        {
          Update: {
            TableName: this.table,
            Key: tokenKey(hashHex),
            UpdateExpression: 'SET isRevoked = :yes',
            ConditionExpression: 'attribute_exists(pk)',
            ExpressionAttributeValues: { ':yes': { BOOL: true } },
          },
        },
        this.auditPut(input.audit, input.nowMs),
      ],
      () => new NotFoundError(`no admin token ${input.tokenId}`),
    );
    return { tokenId: input.tokenId, isRevoked: true, createdAtMs: Number(index?.['createdAtMs']?.N ?? '0') };
  }

  async listTokens(): Promise<AdminTokenRecord[]> {
    const items = await this.queryAll('list the admin tokens', 'admintokens', 'token#');
    const tokens: AdminTokenRecord[] = [];
    for (const item of items) {
      const record = await this.findToken(Buffer.from(item['hash']?.S ?? '', 'hex'));
      if (record !== undefined) tokens.push(record);
    }
    return tokens;
  }

  private async queryAll(what: string, pk: string, prefix: string): Promise<Item[]> {
    const items: Item[] = [];
    let start: Item | undefined;
    do {
      const reply = await this.send(what, () =>
        this.client.send(
          new QueryCommand({
            TableName: this.table,
            KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
            ExpressionAttributeValues: { ':pk': { S: pk }, ':prefix': { S: prefix } },
            ConsistentRead: true,
            ...(start === undefined ? {} : { ExclusiveStartKey: start }),
          }),
        ),
      );
      items.push(...(reply.Items ?? []));
      start = reply.LastEvaluatedKey;
    } while (start !== undefined);
    return items;
  }

  async createTenant(input: {
    tenant: string;
    planId: string | null;
    nowMs: number;
    audit: AuditInput;
  }): Promise<{ tenant: TenantRecord; version: number }> {
    const tenant = parseTenantId(input.tenant);
    const planId = input.planId === null ? null : parsePlanId(input.planId);
    const record: TenantRecord = { id: tenant, status: 'active', planId, createdAtMs: input.nowMs, updatedAtMs: input.nowMs };
    const item: Item = {
      ...tenantItemKey(tenant),
      status: { S: 'active' },
      createdAtMs: { N: String(input.nowMs) },
      updatedAtMs: { N: String(input.nowMs) },
    };
    if (planId !== null) item['planId'] = { S: planId };
    await this.transact(
      'store the tenant',
      [
        { Put: { TableName: this.table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' } },
        this.auditPut({ ...input.audit, after: record }, input.nowMs),
        configVersionBump(this.table),
      ],
      () => new ConflictError('CONFLICT', `tenant ${tenant} exists`, { details: { reason: 'TENANT_EXISTS', tenant } }),
    );
    return { tenant: record, version: await this.config.readVersion() };
  }

  async getTenant(tenant: string): Promise<TenantRecord | undefined> {
    const item = await this.get('read the tenant', tenantItemKey(parseTenantId(tenant)));
    return item === undefined ? undefined : tenantOf(item);
  }

  /** One page of tenants in id order, read from `after` on (never the whole list; see tenant-page.ts). */
  listTenants(filter: { status?: TenantStatus; planId?: string; first: number; after?: string }): Promise<Page<TenantRecord>> {
    return readTenantPage({ client: this.client, table: this.table, filter, send: (what, call) => this.send(what, call), tenantOf });
  }

  async setTenantStatus(input: {
    tenant: string;
    status: TenantStatus;
    nowMs: number;
    audit: AuditInput;
  }): Promise<{ tenant: TenantRecord; version: number }> {
    const before = await this.getTenant(input.tenant);
    if (before === undefined) throw new NotFoundError(`no tenant ${input.tenant}`, { details: { tenant: input.tenant } });
    const after: TenantRecord = { ...before, status: input.status, updatedAtMs: input.nowMs };
    await this.transact(
      'change the tenant status',
      [
        {
          Update: {
            TableName: this.table,
            Key: tenantItemKey(before.id),
            UpdateExpression: 'SET #status = :status, updatedAtMs = :now',
            ConditionExpression: 'attribute_exists(pk)',
            ExpressionAttributeNames: { '#status': 'status' },
            ExpressionAttributeValues: { ':status': { S: input.status }, ':now': { N: String(input.nowMs) } },
          },
        },
        this.auditPut({ ...input.audit, before, after }, input.nowMs),
        configVersionBump(this.table),
      ],
      () => new NotFoundError(`no tenant ${input.tenant}`),
    );
    return { tenant: after, version: await this.config.readVersion() };
  }

  async createKey(input: {
    tenant: string;
    keyId: string;
    planId: string;
    nowMs: number;
    audit: AuditInput;
  }): Promise<{ key: string; version: number }> {
    const after = { tenant: input.tenant, keyId: input.keyId, planId: input.planId };
    return this.config.addKey({ ...input, extraItems: [this.auditPut({ ...input.audit, after }, input.nowMs)] });
  }

  /** The key record behind a tenant's key id. @throws NotFoundError */
  private async keyRecord(tenant: string, keyId: string): Promise<{ hashHex: string; item: Item }> {
    const index = await this.get('find the API key', {
      pk: { S: `tenant#${parseTenantId(tenant)}` },
      sk: { S: `apikey#${parseKeyId(keyId)}` },
    });
    const hashHex = index?.['hash']?.S;
    const item =
      hashHex === undefined ? undefined : await this.get('read the API key', { pk: { S: `apikey#${hashHex}` }, sk: { S: 'apikey' } });
    if (hashHex === undefined || item === undefined)
      throw new NotFoundError(`tenant ${tenant} has no key ${keyId}`, { details: { tenant, keyId } });
    return { hashHex, item };
  }

  private keyView(tenant: string, hashHex: string, item: Item): KeyView {
    return {
      tenant,
      keyId: item['keyId']?.S ?? '',
      planId: item['planId']?.S ?? '',
      fingerprint: keyFingerprint(Buffer.from(hashHex, 'hex')),
      createdAtMs: Number(item['createdAtMs']?.N ?? '0'),
      isRevoked: item['isRevoked']?.BOOL !== false,
      expiresAtMs: item['expiresAtMs']?.N === undefined ? null : Number(item['expiresAtMs'].N),
    };
  }

  async listKeys(tenant: string): Promise<KeyView[]> {
    const views: KeyView[] = [];
    for (const index of await this.queryAll('list the keys of a tenant', `tenant#${parseTenantId(tenant)}`, 'apikey#')) {
      const hashHex = index['hash']?.S ?? '';
      const item = await this.get('read the API key', { pk: { S: `apikey#${hashHex}` }, sk: { S: 'apikey' } });
      if (item !== undefined) views.push(this.keyView(tenant, hashHex, item));
    }
    return views;
  }

  async revokeKey(input: { tenant: string; keyId: string; nowMs: number; audit: AuditInput }): Promise<number> {
    const { hashHex, item } = await this.keyRecord(input.tenant, input.keyId);
    const before = this.keyView(input.tenant, hashHex, item);
    const audit = this.auditPut({ ...input.audit, before, after: { ...before, isRevoked: true } }, input.nowMs);
    return this.config.revokeKey({ tenant: input.tenant, keyId: input.keyId, extraItems: [audit] });
  }

  async rotateKey(input: {
    tenant: string;
    keyId: string;
    newKeyId: string;
    overlapMs: number;
    nowMs: number;
    audit: AuditInput;
  }): Promise<{ key: string; version: number; expiresAtMs: number }> {
    if (!Number.isSafeInteger(input.overlapMs) || input.overlapMs < 0) {
      throw new ValidationError('INVALID_INPUT', 'overlapSeconds must be an integer >= 0');
    }
    const { hashHex, item } = await this.keyRecord(input.tenant, input.keyId);
    const before = this.keyView(input.tenant, hashHex, item);
    if (before.isRevoked)
      throw new ConflictError('CONFLICT', `key ${input.keyId} of ${input.tenant} is revoked`, { details: { reason: 'KEY_REVOKED' } });
    const expiresAtMs = input.nowMs + input.overlapMs;
    const expire: TransactWriteItem = {
      Update: {
        TableName: this.table,
        Key: { pk: { S: `apikey#${hashHex}` }, sk: { S: 'apikey' } },
        UpdateExpression: 'SET expiresAtMs = :expires',
        ConditionExpression: 'attribute_exists(pk) AND isRevoked = :no',
        ExpressionAttributeValues: { ':expires': { N: String(expiresAtMs) }, ':no': { BOOL: false } },
      },
    };
    const after = { old: { ...before, expiresAtMs }, new: { keyId: input.newKeyId, planId: before.planId } };
    const created = await this.config.addKey({
      tenant: input.tenant,
      keyId: input.newKeyId,
      planId: before.planId,
      nowMs: input.nowMs,
      extraItems: [expire, this.auditPut({ ...input.audit, before, after }, input.nowMs)],
    });
    return { ...created, expiresAtMs };
  }

  async appendAudit(input: AuditInput & { nowMs: number }): Promise<void> {
    await this.transact(
      'append the audit entry',
      [this.auditPut(input, input.nowMs)],
      () => new ConflictError('CONFLICT', 'audit entry collision'),
    );
  }

  async listAudit(filter: AuditFilter): Promise<Page<AuditEntry>> {
    return this.send('read the audit log', () => listAudit(this.client, this.table, filter));
  }

  async putAccount(settings: AccountSettings, nowMs: number): Promise<number> {
    await putAccountSettings({ accounts: this.accounts, config: this.config, settings, nowMs });
    return this.config.readVersion();
  }

  async getAccount(tenant: string): Promise<AccountView | undefined> {
    const settings = await this.accounts.get(parseTenantId(tenant));
    return settings === undefined ? undefined : accountView(settings);
  }
}
