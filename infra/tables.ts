/**
 * DynamoDB table definitions, created idempotently. Every table uses a generic
 * string `pk`/`sk` pair so item shapes can evolve without table migrations;
 * the item layouts are documented where they are written (src/metering,
 * src/workflows). On-demand billing: no capacity to plan.
 *
 * Running this twice changes nothing; a table that exists with a different
 * key schema is an error (never silently reused).
 */
import {
  CreateTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  UpdateTimeToLiveCommand,
  ResourceInUseException,
  ResourceNotFoundException,
  type CreateTableCommandInput,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';

/** Logical table names; the physical name is `<prefix><logical>`. */
export const TABLES = {
  /** Per tenant and period: one item per usage event, the balance, statements, warnings sent. */
  ledger: 'ledger',
  /** Plans, tenants, API key hashes, config versions. */
  config: 'config',
  /** Deferred (202) jobs: status and stored results. */
  jobs: 'jobs',
  /** First responses of requests sent with an Idempotency-Key (expire by the `expiresAt` TTL attribute). */
  responses: 'responses',
} as const;

/** Tables whose items expire by DynamoDB TTL, and the attribute (epoch seconds) that says when. */
const TTL_ATTRIBUTES: Partial<Record<LogicalTable, string>> = { responses: 'expiresAt' };

export type LogicalTable = keyof typeof TABLES;

function definition(name: string): CreateTableCommandInput {
  return {
    TableName: name,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      { AttributeName: 'pk', AttributeType: 'S' },
      { AttributeName: 'sk', AttributeType: 'S' },
    ],
    KeySchema: [
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ],
  };
}

/** Physical table names for a prefix, e.g. `tollgate_ledger`. */
export function tableNames(prefix: string): Record<LogicalTable, string> {
  return {
    ledger: `${prefix}${TABLES.ledger}`,
    config: `${prefix}${TABLES.config}`,
    jobs: `${prefix}${TABLES.jobs}`,
    responses: `${prefix}${TABLES.responses}`,
  };
}

async function waitActive(client: DynamoDBClient, name: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const reply = await client.send(new DescribeTableCommand({ TableName: name }));
    if (reply.Table?.TableStatus === 'ACTIVE') {
      const keys = (reply.Table.KeySchema ?? []).map((key) => `${key.AttributeName}:${key.KeyType}`).join(',');
      if (keys !== 'pk:HASH,sk:RANGE') {
        throw new Error(`table ${name} exists with key schema ${keys}, expected pk:HASH,sk:RANGE`);
      }
      return;
    }
    await new Promise((resolveWait) => setTimeout(resolveWait, 100));
  }
  throw new Error(`table ${name} did not become ACTIVE within ${timeoutMs} ms`);
}

/** Turns DynamoDB TTL on for `attribute` unless it already is (readers still check the time themselves: TTL deletes late). */
async function ensureTimeToLive(client: DynamoDBClient, table: string, attribute: string): Promise<void> {
  const current = await client.send(new DescribeTimeToLiveCommand({ TableName: table }));
  const description = current.TimeToLiveDescription;
  if (description?.AttributeName === attribute && (description.TimeToLiveStatus === 'ENABLED' || description.TimeToLiveStatus === 'ENABLING')) return;
  await client.send(new UpdateTimeToLiveCommand({ TableName: table, TimeToLiveSpecification: { AttributeName: attribute, Enabled: true } }));
}

/** Creates every tollgate table that is missing and waits until all are ACTIVE. */
export async function ensureTables(client: DynamoDBClient, prefix: string): Promise<string[]> {
  const names = Object.values(tableNames(prefix));
  for (const name of names) {
    try {
      await client.send(new DescribeTableCommand({ TableName: name }));
    } catch (error) {
      if (!(error instanceof ResourceNotFoundException)) throw error;
      try {
        await client.send(new CreateTableCommand(definition(name)));
      } catch (createError) {
        // A concurrent creator won the race: fine, the definition is the same.
        if (!(createError instanceof ResourceInUseException)) throw createError;
      }
    }
    await waitActive(client, name, 30_000);
  }
  for (const [logical, attribute] of Object.entries(TTL_ATTRIBUTES)) {
    await ensureTimeToLive(client, tableNames(prefix)[logical as LogicalTable], attribute);
  }
  return names;
}
