/**
 * What the API process sets up for the demo at start, unless
 * `API_DEMO_SEED=false`: the demo's plans and one key per demo tenant in the
 * config table, and the demo tenants' accounts with their account workflows.
 * The keys are shown once, in a file only this user can read, never in a log
 * line, and reused across restarts while they stay valid.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Client, type Connection } from '@temporalio/client';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoAccountStore } from '../../billing/index.js';
import { ConflictError, type AppConfig, type Logger } from '../../shared/index.js';
import { accountTimings, ensureAccountWorkflow } from '../../workflows/index.js';
import type { DynamoConfigStore } from '../config/dynamo-config-store.js';
import { DEMO_ACCOUNTS, DEMO_TENANTS, seedDemoConfig, type DemoKey } from './seed.js';

/** The demo keys shown at the last start, if the file is there and readable (they are reused when still valid). */
function readDemoKeys(file: string): DemoKey[] {
  if (!existsSync(file)) return [];
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
    if (!Array.isArray(parsed)) return [];
    return parsed.filter(
      (entry): entry is DemoKey =>
        typeof entry === 'object' &&
        entry !== null &&
        typeof (entry as Record<string, unknown>)['tenant'] === 'string' &&
        typeof (entry as Record<string, unknown>)['keyId'] === 'string' &&
        typeof (entry as Record<string, unknown>)['planId'] === 'string' &&
        typeof (entry as Record<string, unknown>)['key'] === 'string',
    );
  } catch {
    return [];
  }
}

/** Where the demo's plans and keys go, and the file (an absolute path) that shows the keys. */
export interface SeedDemoKeysOptions {
  store: DynamoConfigStore;
  keysFile: string;
  logger: Logger;
  /** Where tenants live as entities (the admin API's list): the demo tenants are stored there too when missing. */
  tenants?: {
    getTenant: (tenant: string) => Promise<unknown>;
    createTenant: (input: {
      tenant: string;
      planId: string | null;
      nowMs: number;
      audit: { tokenId: string; action: string; target: string };
    }) => Promise<unknown>;
  };
}

/**
 * Stores the demo plans and a key per demo tenant (reusing the keys of
 * `keysFile` that are still valid) and writes the keys to `keysFile`, mode 0600.
 * @throws DependencyError when DynamoDB fails; the file system's error when the file cannot be written
 */
export async function seedDemoKeys({ store, keysFile, logger, tenants }: SeedDemoKeysOptions): Promise<void> {
  const keys = await seedDemoConfig(store, readDemoKeys(keysFile), Date.now());
  // the demo tenants as entities, so the operator's tenant list shows who is sending traffic (audit-logged as the seed)
  for (const { tenant, planId } of DEMO_TENANTS) {
    if (tenants === undefined || (await tenants.getTenant(tenant)) !== undefined) continue;
    const audit = { tokenId: 'demo-seed', action: 'tenant.create', target: `tenant/${tenant}` };
    await tenants.createTenant({ tenant, planId, nowMs: Date.now(), audit }).catch((error: unknown) => {
      if (!(error instanceof ConflictError)) throw error;
    });
  }
  mkdirSync(dirname(keysFile), { recursive: true });
  writeFileSync(keysFile, `${JSON.stringify(keys, null, 2)}\n`, { mode: 0o600 });
  chmodSync(keysFile, 0o600);
  logger.info({ file: keysFile, tenants: keys.map((key) => key.tenant) }, 'demo API keys written');
}

/** The clients and settings the demo accounts are set up with. */
export interface SetUpDemoAccountsOptions {
  config: Pick<AppConfig, 'account' | 'dynamodb' | 'temporal'>;
  dynamo: DynamoDBClient;
  temporal: Connection;
  logger: Logger;
}

/**
 * Stores the demo tenants' accounts (billing period, price) and ensures their
 * account workflows (warnings, period close). Best effort: a failure is
 * logged and the API serves without them; it never throws.
 */
export async function setUpDemoAccounts({ config, dynamo, temporal, logger }: SetUpDemoAccountsOptions): Promise<void> {
  try {
    const accounts = new DynamoAccountStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
    for (const account of DEMO_ACCOUNTS) await accounts.put(account, Date.now());
    const accountClient = new Client({ connection: temporal, namespace: config.temporal.namespace });
    for (const account of DEMO_ACCOUNTS) {
      await ensureAccountWorkflow(accountClient, {
        tenant: account.tenant,
        taskQueue: config.temporal.taskQueue,
        timings: accountTimings(config),
      });
    }
    logger.info({ tenants: DEMO_ACCOUNTS.map((account) => account.tenant) }, 'demo accounts stored, account workflows running');
  } catch (error) {
    logger.error({ err: error instanceof Error ? error.message : String(error) }, 'demo accounts could not be set up');
  }
}
