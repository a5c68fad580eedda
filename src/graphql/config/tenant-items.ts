/**
 * Config-table items shared by the config store and the admin store: the move of the config version
 * (in every transaction that changes what an API instance serves), and the tenants' statuses.
 *
 *   `config` / `version`           version (N)
 *   `tenants` / `tenant#<tenant>`  status (S: active | suspended), planId (S, optional), createdAtMs, updatedAtMs
 */
import { QueryCommand, type AttributeValue, type DynamoDBClient, type TransactWriteItem } from '@aws-sdk/client-dynamodb';

/** The transaction item that moves the config version by one (every instance reloads). */
export function configVersionBump(table: string): TransactWriteItem {
  return {
    Update: {
      TableName: table,
      Key: { pk: { S: 'config' }, sk: { S: 'version' } },
      UpdateExpression: 'ADD version :one',
      ExpressionAttributeValues: { ':one': { N: '1' } },
    },
  };
}

/** The key of a tenant's item. */
export function tenantItemKey(tenant: string): Record<string, AttributeValue> {
  return { pk: { S: 'tenants' }, sk: { S: `tenant#${tenant}` } };
}

/** The ids of suspended tenants (a consistent read of the `tenants` partition). */
export async function listSuspendedTenants(client: DynamoDBClient, table: string): Promise<Set<string>> {
  const suspended = new Set<string>();
  let start: Record<string, AttributeValue> | undefined;
  do {
    const reply = await client.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :tenants',
        FilterExpression: '#status = :suspended',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':tenants': { S: 'tenants' }, ':suspended': { S: 'suspended' } },
        ConsistentRead: true,
        ...(start === undefined ? {} : { ExclusiveStartKey: start }),
      }),
    );
    for (const item of reply.Items ?? []) suspended.add((item['sk']?.S ?? '').slice('tenant#'.length));
    start = reply.LastEvaluatedKey;
  } while (start !== undefined);
  return suspended;
}
