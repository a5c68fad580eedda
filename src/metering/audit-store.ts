/**
 * The latest audit report of each audit scope, in the config table:
 *   pk `audit#<scope>`  sk `latest`
 *   cycle (number of the cycle since the workflow first started), startedAtMs, finishedAtMs,
 *   audited, drifting, absoluteDrift, unsettled (integers), samples (JSON of up to 20
 *   drifting TenantPeriodAudit reports, largest |drift| first)
 * Written once per completed cycle with a condition on `finishedAtMs` (an older cycle
 * never overwrites a newer one, also across a restarted workflow whose cycle count
 * starts over; a retried write of the same cycle is a no-op).
 */
import { ConditionalCheckFailedException, GetItemCommand, PutItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DependencyError, ValidationError } from '../shared/index.js';
import { configTableName } from './dynamo.js';
import type { AuditSummary, TenantPeriodAudit } from './model/audit.js';

/** One completed audit cycle. JSON-safe. */
export interface AuditReport {
  scope: string;
  cycle: number;
  startedAtMs: number;
  finishedAtMs: number;
  summary: AuditSummary;
}

const SCOPE = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** Checks an audit scope name (part of a workflow id and an item key). @throws ValidationError `INVALID_ID` */
export function parseAuditScope(raw: string): string {
  if (!SCOPE.test(raw))
    throw new ValidationError('INVALID_ID', `an audit scope matches ${SCOPE.source}, got ${JSON.stringify(raw.slice(0, 80))}`);
  return raw;
}

/** Where audit reports live (the config table); read by the API's metrics, written by the audit workflow. */
export class DynamoAuditStore {
  private readonly table: string;

  constructor(
    private readonly client: DynamoDBClient,
    options: { tablePrefix: string },
  ) {
    this.table = configTableName(options.tablePrefix);
  }

  /**
   * Stores a cycle's report unless one that finished at the same time or later is stored already.
   * @returns false when such a report was there (nothing written)
   * @throws DependencyError `DYNAMODB_UNAVAILABLE`
   */
  async put(report: AuditReport): Promise<boolean> {
    const scope = parseAuditScope(report.scope);
    const { summary } = report;
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.table,
          Item: {
            pk: { S: `audit#${scope}` },
            sk: { S: 'latest' },
            cycle: { N: String(report.cycle) },
            startedAtMs: { N: String(report.startedAtMs) },
            finishedAtMs: { N: String(report.finishedAtMs) },
            audited: { N: String(summary.audited) },
            drifting: { N: String(summary.drifting) },
            absoluteDrift: { N: String(summary.absoluteDrift) },
            unsettled: { N: String(summary.unsettled) },
            samples: { S: JSON.stringify(summary.samples) },
          },
          ConditionExpression: 'attribute_not_exists(pk) OR finishedAtMs < :finished',
          ExpressionAttributeValues: { ':finished': { N: String(report.finishedAtMs) } },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw new DependencyError('DYNAMODB_UNAVAILABLE', 'the audit report could not be stored', { cause: error });
    }
  }

  /** The latest report of a scope, or undefined before the first cycle completed. @throws DependencyError */
  async latest(scopeRaw: string): Promise<AuditReport | undefined> {
    const scope = parseAuditScope(scopeRaw);
    let item;
    try {
      item = (
        await this.client.send(
          new GetItemCommand({ TableName: this.table, Key: { pk: { S: `audit#${scope}` }, sk: { S: 'latest' } }, ConsistentRead: true }),
        )
      ).Item;
    } catch (error) {
      throw new DependencyError('DYNAMODB_UNAVAILABLE', 'the audit report could not be read', { cause: error });
    }
    if (item === undefined) return undefined;
    const number = (name: string): number => Number(item[name]?.N ?? '0');
    return {
      scope,
      cycle: number('cycle'),
      startedAtMs: number('startedAtMs'),
      finishedAtMs: number('finishedAtMs'),
      summary: {
        audited: number('audited'),
        drifting: number('drifting'),
        absoluteDrift: number('absoluteDrift'),
        unsettled: number('unsettled'),
        samples: JSON.parse(item['samples']?.S ?? '[]') as TenantPeriodAudit[],
      },
    };
  }
}
