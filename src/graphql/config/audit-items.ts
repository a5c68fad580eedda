/**
 * The admin audit log in the config table, append-only: `audit` / `<atMs, 15 digits>#<random>` with
 * tokenId, action, target, before and after (JSON of views: never a key, token or webhook secret), atMs.
 * Read newest first, filtered by token, action or target prefix, a page at a time.
 */
import { randomBytes } from 'node:crypto';
import { QueryCommand, type AttributeValue, type DynamoDBClient, type TransactWriteItem } from '@aws-sdk/client-dynamodb';
import type { AuditEntry, AuditFilter, AuditInput, Page } from '../../admin/index.js';

type Item = Record<string, AttributeValue>;

function auditOf(item: Item): AuditEntry {
  return {
    id: item['sk']?.S ?? '',
    tokenId: item['tokenId']?.S ?? '',
    action: item['action']?.S ?? '',
    target: item['target']?.S ?? '',
    before: item['before']?.S ?? null,
    after: item['after']?.S ?? null,
    atMs: Number(item['atMs']?.N ?? '0'),
  };
}

/** The audit entry's put, for the change's own transaction (never overwrites: the log is append-only). */
export function auditPut(table: string, input: AuditInput, nowMs: number): TransactWriteItem {
  const item: Item = {
    pk: { S: 'audit' },
    sk: { S: `${String(nowMs).padStart(15, '0')}#${randomBytes(6).toString('hex')}` },
    tokenId: { S: input.tokenId },
    action: { S: input.action },
    target: { S: input.target },
    atMs: { N: String(nowMs) },
  };
  if (input.before !== undefined) item['before'] = { S: JSON.stringify(input.before) };
  if (input.after !== undefined) item['after'] = { S: JSON.stringify(input.after) };
  return { Put: { TableName: table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' } };
}

/** One page of entries matching `filter`, newest first; the cursor is the last entry's id. */
export async function listAudit(client: DynamoDBClient, table: string, filter: AuditFilter): Promise<Page<AuditEntry>> {
  const items: AuditEntry[] = [];
  let start: Item | undefined = filter.after === undefined ? undefined : { pk: { S: 'audit' }, sk: { S: filter.after } };
  let hasMore = false;
  do {
    const reply = await client.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :audit',
        ExpressionAttributeValues: { ':audit': { S: 'audit' } },
        ScanIndexForward: false,
        ConsistentRead: true,
        Limit: 200,
        ...(start === undefined ? {} : { ExclusiveStartKey: start }),
      }),
    );
    for (const entry of (reply.Items ?? []).map(auditOf)) {
      if (filter.tokenId !== undefined && entry.tokenId !== filter.tokenId) continue;
      if (filter.action !== undefined && entry.action !== filter.action) continue;
      if (filter.targetPrefix !== undefined && !entry.target.startsWith(filter.targetPrefix)) continue;
      if (items.length === filter.first) {
        hasMore = true;
        break;
      }
      items.push(entry);
    }
    start = reply.LastEvaluatedKey;
  } while (start !== undefined && !hasMore);
  return { items, cursor: hasMore ? (items.at(-1)?.id ?? null) : null };
}
