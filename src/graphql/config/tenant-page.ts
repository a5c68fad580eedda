/**
 * One page of the admin API's tenant list (`tenants(status, plan, first, after)`), read from the config table a
 * DynamoDB page at a time from `after` on, filtered by DynamoDB, stopping as soon as the page is full: the first
 * page of 100 000 tenants costs one or two queries, not a read of the whole list (issue 18's operator view).
 */
import { QueryCommand, type AttributeValue, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Page, TenantRecord, TenantStatus } from '../../admin/index.js';

type Item = Record<string, AttributeValue>;

export async function readTenantPage(input: {
  client: DynamoDBClient;
  table: string;
  filter: { status?: TenantStatus; planId?: string; first: number; after?: string };
  send: <T>(what: string, call: () => Promise<T>) => Promise<T>;
  tenantOf: (item: Item) => TenantRecord;
}): Promise<Page<TenantRecord>> {
  const { filter } = input;
  const names: Record<string, string> = {};
  // tenant items are `tenants` / `tenant#<id>`: every id sorts between `tenant#` and `tenant$`
  const values: Record<string, AttributeValue> = {
    ':pk': { S: 'tenants' },
    ':lo': { S: `tenant#${filter.after ?? ''}` },
    ':hi': { S: 'tenant$' },
  };
  const conditions: string[] = [];
  if (filter.status !== undefined) {
    names['#status'] = 'status';
    values[':status'] = { S: filter.status };
    conditions.push('#status = :status');
  }
  if (filter.planId !== undefined) {
    values[':plan'] = { S: filter.planId };
    conditions.push('planId = :plan');
  }
  const found: TenantRecord[] = [];
  let start: Item | undefined;
  do {
    const reply = await input.send('list the tenants', () =>
      input.client.send(
        new QueryCommand({
          TableName: input.table,
          KeyConditionExpression: 'pk = :pk AND sk BETWEEN :lo AND :hi',
          ExpressionAttributeValues: values,
          ...(Object.keys(names).length === 0 ? {} : { ExpressionAttributeNames: names }),
          ...(conditions.length === 0 ? {} : { FilterExpression: conditions.join(' AND ') }),
          // a filter drops items after the read: evaluate more per query, or a rare match walks the partition a few items a call
          Limit: conditions.length === 0 ? Math.min(1_000, filter.first + 2) : Math.min(1_000, Math.max(100, (filter.first + 2) * 4)),
          ConsistentRead: true,
          ...(start === undefined ? {} : { ExclusiveStartKey: start }),
        }),
      ),
    );
    for (const item of reply.Items ?? []) {
      const tenant = input.tenantOf(item);
      if (filter.after === undefined || tenant.id > filter.after) found.push(tenant);
    }
    start = reply.LastEvaluatedKey;
  } while (start !== undefined && found.length <= filter.first);
  const items = found.slice(0, filter.first);
  return { items, cursor: found.length > filter.first ? (items.at(-1)?.id ?? null) : null };
}
