/**
 * DynamoDB table definitions, created idempotently. Every table uses a generic
 * string `pk`/`sk` pair so item shapes can evolve without table migrations;
 * the item layouts are documented where they are written (src/metering,
 * src/workflows). On-demand billing: no capacity to plan.
 *
 * Running this twice changes nothing; a table that exists with a different
 * key schema is an error (never silently reused). A secondary index added
 * here later is added to a table created before it (and waited for).
 */
import {
  CreateTableCommand,
  UpdateTableCommand,
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

interface SecondaryIndex {
  name: string;
  hash: { name: string; type: 'S' | 'N' };
  range: { name: string; type: 'S' | 'N' };
  /** Attributes projected besides the keys (none: keys only). */
  include?: string[];
}

/**
 * Sparse global secondary indexes, by table. `jobs.open-jobs`: every unfinished job of every tenant, by shard and
 * creation time (src/jobs/store.ts). `jobs.tenant-jobs`: one tenant's jobs by creation time (the usage API's `jobs`,
 * src/graphql/usage/jobs-list.ts; the job items already carry `tenant` and `createdAtMs`, the queue item has no
 * `createdAtMs` and stays out). `ledger.entries-by-time`: a ledger partition's entries by event time (the usage API's
 * `receipts`, src/graphql/usage/receipt-search.ts; entries carry `atMs`, balances and statements do not).
 */
const SECONDARY_INDEXES: Partial<Record<LogicalTable, SecondaryIndex[]>> = {
  jobs: [
    { name: 'open-jobs', hash: { name: 'openShard', type: 'S' }, range: { name: 'openSinceMs', type: 'N' } },
    { name: 'tenant-jobs', hash: { name: 'tenant', type: 'S' }, range: { name: 'createdAtMs', type: 'N' } },
  ],
  ledger: [
    {
      name: 'entries-by-time',
      hash: { name: 'pk', type: 'S' },
      range: { name: 'atMs', type: 'N' },
      include: ['eventId', 'kind', 'amount', 'operation', 'lateOf'],
    },
  ],
};

const indexAttributes = (index: SecondaryIndex) => [
  { AttributeName: index.hash.name, AttributeType: index.hash.type },
  { AttributeName: index.range.name, AttributeType: index.range.type },
];

const indexDefinition = (index: SecondaryIndex) => ({
  IndexName: index.name,
  KeySchema: [
    { AttributeName: index.hash.name, KeyType: 'HASH' as const },
    { AttributeName: index.range.name, KeyType: 'RANGE' as const },
  ],
  Projection:
    index.include === undefined
      ? { ProjectionType: 'KEYS_ONLY' as const }
      : { ProjectionType: 'INCLUDE' as const, NonKeyAttributes: index.include },
});

function definition(name: string, indexes: SecondaryIndex[]): CreateTableCommandInput {
  return {
    TableName: name,
    BillingMode: 'PAY_PER_REQUEST',
    // each attribute once (an index may be keyed by the table's own pk)
    AttributeDefinitions: [
      { AttributeName: 'pk', AttributeType: 'S' as const },
      { AttributeName: 'sk', AttributeType: 'S' as const },
      ...indexes.flatMap(indexAttributes),
    ].filter((attribute, at, all) => all.findIndex((other) => other.AttributeName === attribute.AttributeName) === at),
    KeySchema: [
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ],
    ...(indexes.length === 0 ? {} : { GlobalSecondaryIndexes: indexes.map(indexDefinition) }),
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

/**
 * Adds the secondary indexes a table created before them lacks, one at a time
 * (DynamoDB allows one index creation per update), and waits until each is ACTIVE.
 */
async function ensureIndexes(client: DynamoDBClient, name: string, indexes: SecondaryIndex[], timeoutMs: number): Promise<void> {
  for (const index of indexes) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const table = (await client.send(new DescribeTableCommand({ TableName: name }))).Table;
      const existing = (table?.GlobalSecondaryIndexes ?? []).find((candidate) => candidate.IndexName === index.name);
      if (existing === undefined) {
        try {
          await client.send(
            new UpdateTableCommand({
              TableName: name,
              AttributeDefinitions: indexAttributes(index),
              GlobalSecondaryIndexUpdates: [{ Create: indexDefinition(index) }],
            }),
          );
        } catch (error) {
          // another process is adding it (or the table is busy): look again
          if (!(error instanceof ResourceInUseException)) throw error;
        }
      } else {
        const keys = (existing.KeySchema ?? []).map((key) => `${key.AttributeName}:${key.KeyType}`).join(',');
        if (keys !== `${index.hash.name}:HASH,${index.range.name}:RANGE`) {
          throw new Error(`index ${index.name} of table ${name} exists with key schema ${keys}`);
        }
        if (existing.IndexStatus === undefined || existing.IndexStatus === 'ACTIVE') break;
      }
      if (Date.now() >= deadline) throw new Error(`index ${index.name} of table ${name} did not become ACTIVE within ${timeoutMs} ms`);
      await new Promise((resolveWait) => setTimeout(resolveWait, 100));
    }
  }
}

/** Turns DynamoDB TTL on for `attribute` unless it already is (readers still check the time themselves: TTL deletes late). */
async function ensureTimeToLive(client: DynamoDBClient, table: string, attribute: string): Promise<void> {
  const current = await client.send(new DescribeTimeToLiveCommand({ TableName: table }));
  const description = current.TimeToLiveDescription;
  if (
    description?.AttributeName === attribute &&
    (description.TimeToLiveStatus === 'ENABLED' || description.TimeToLiveStatus === 'ENABLING')
  )
    return;
  await client.send(
    new UpdateTimeToLiveCommand({ TableName: table, TimeToLiveSpecification: { AttributeName: attribute, Enabled: true } }),
  );
}

/** Creates every tollgate table that is missing and waits until all are ACTIVE. */
export async function ensureTables(client: DynamoDBClient, prefix: string): Promise<string[]> {
  const physical = tableNames(prefix);
  for (const [logical, name] of Object.entries(physical) as [LogicalTable, string][]) {
    const indexes = SECONDARY_INDEXES[logical] ?? [];
    try {
      await client.send(new DescribeTableCommand({ TableName: name }));
    } catch (error) {
      if (!(error instanceof ResourceNotFoundException)) throw error;
      try {
        await client.send(new CreateTableCommand(definition(name, indexes)));
      } catch (createError) {
        // A concurrent creator won the race: fine, the definition is the same.
        if (!(createError instanceof ResourceInUseException)) throw createError;
      }
    }
    await waitActive(client, name, 30_000);
    await ensureIndexes(client, name, indexes, 120_000);
  }
  const names = Object.values(physical);
  for (const [logical, attribute] of Object.entries(TTL_ATTRIBUTES)) {
    await ensureTimeToLive(client, tableNames(prefix)[logical as LogicalTable], attribute);
  }
  return names;
}
