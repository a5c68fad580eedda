/**
 * The threshold warnings recorded in a tenant's period (sk `warning#<limitId>#<percent>` of its
 * ledger partition, written by `DynamoPeriodStore`), listed for the tenant usage API. Reads only.
 */
import { QueryCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DependencyError, type TenantId } from '../shared/index.js';
import { ledgerTableName } from '../metering/index.js';

export interface WarningSent {
  limitId: string;
  percent: number;
  /** pending, delivered, skipped or failed (see periods.ts). */
  status: string;
  createdAtMs: number;
}

export class DynamoWarningReader {
  private readonly table: string;

  constructor(
    private readonly client: DynamoDBClient,
    options: { tablePrefix: string },
  ) {
    this.table = ledgerTableName(options.tablePrefix);
  }

  /** Every warning record of one period (at most one per limit and percent). @throws DependencyError `DYNAMODB_UNAVAILABLE` */
  async list(input: { tenant: TenantId; periodStart: string }): Promise<WarningSent[]> {
    let reply;
    try {
      reply = await this.client.send(
        new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
          ExpressionAttributeValues: {
            ':pk': { S: `tenant#${input.tenant}#period#${input.periodStart}` },
            ':prefix': { S: 'warning#' },
          },
          ConsistentRead: true,
        }),
      );
    } catch (error) {
      throw new DependencyError('DYNAMODB_UNAVAILABLE', 'DynamoDB did not list the warnings', { cause: error });
    }
    return (reply.Items ?? []).map((item) => {
      const [, limitId = '', percent = '0'] = (item['sk']?.S ?? '').split('#');
      return { limitId, percent: Number(percent), status: item['status']?.S ?? '', createdAtMs: Number(item['createdAtMs']?.N ?? '0') };
    });
  }
}
