/**
 * Reading the ledger table directly, to check what the pump wrote.
 */
import { QueryCommand, type AttributeValue, type DynamoDBClient } from '@aws-sdk/client-dynamodb';

export interface LedgerPartition {
  balance: { amount: number; entries: number } | undefined;
  /** Event ids of every entry item, as stored (sorted). */
  entryIds: string[];
  /** Sum of the entry items' amounts. */
  entrySum: number;
}

/** Every item of one tenant and period (consistent reads, all pages). */
export async function readLedgerPartition(
  client: DynamoDBClient,
  input: { table: string; tenant: string; periodStart: string },
): Promise<LedgerPartition> {
  const result: LedgerPartition = { balance: undefined, entryIds: [], entrySum: 0 };
  let startKey: Record<string, AttributeValue> | undefined;
  do {
    const page = await client.send(
      new QueryCommand({
        TableName: input.table,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': { S: `tenant#${input.tenant}#period#${input.periodStart}` } },
        ConsistentRead: true,
        ...(startKey === undefined ? {} : { ExclusiveStartKey: startKey }),
      }),
    );
    for (const item of page.Items ?? []) {
      const sk = item['sk']?.S ?? '';
      if (sk === 'balance') {
        result.balance = { amount: Number(item['amount']?.N), entries: Number(item['entries']?.N) };
      } else {
        result.entryIds.push(item['eventId']?.S ?? '');
        result.entrySum += Number(item['amount']?.N);
      }
    }
    startKey = page.LastEvaluatedKey;
  } while (startKey !== undefined);
  result.entryIds.sort();
  return result;
}
