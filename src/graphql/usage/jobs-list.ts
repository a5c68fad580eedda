/**
 * The usage API's `jobs`: one tenant's deferred jobs, newest first, a page at a time. The tenant is the caller's
 * (never an argument): the page is a query of the jobs table's `tenant-jobs` index (hash `tenant`, range
 * `createdAtMs`, infra/tables.ts) under that tenant, then one consistent batch read of the page's items in the
 * tenant's own partition (`tenant#<tenant>` / `job#<id>`, src/jobs/store.ts). No scan; a cursor carries only a
 * creation time and a job id, so a crafted one can only point inside the caller's own jobs.
 *
 * The index is eventually consistent: a job deferred a moment ago may be missing from the first page for a moment
 * (its status, read from the item, is always the current one).
 */
import { BatchGetItemCommand, QueryCommand, type AttributeValue, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { isJobId, jobsTableName } from '../../jobs/index.js';
import { DependencyError, ValidationError } from '../../shared/index.js';

export const TENANT_JOBS_INDEX = 'tenant-jobs';
export const MAX_JOBS_PAGE = 100;
/** Characters of a job's stored result shown in a listing (the whole result: `GET /jobs/<id>`). */
export const RESULT_SUMMARY_CHARS = 200;

export interface JobListItem {
  id: string;
  status: string;
  operationName: string | null;
  requestedCost: number;
  actualCost: number | null;
  errorCode: string | null;
  createdAtMs: number;
  finishedAtMs: number | null;
  /** The first characters of the stored result's JSON (null until it ran). */
  resultSummary: string | null;
  /** Length of the stored result's JSON, characters (null until it ran). */
  resultChars: number | null;
}

export interface JobListPage {
  items: JobListItem[];
  cursor: string | null;
}

type Item = Record<string, AttributeValue>;

const wrap = (error: unknown): DependencyError =>
  new DependencyError('DYNAMODB_UNAVAILABLE', 'DynamoDB did not answer the jobs listing', { cause: error });

const encodeCursor = (createdAtMs: number, jobId: string): string =>
  Buffer.from(JSON.stringify([createdAtMs, jobId])).toString('base64url');

/** @throws ValidationError `INVALID_INPUT` for anything this API did not hand out */
function decodeCursor(raw: string): { createdAtMs: number; jobId: string } {
  try {
    const value = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(value) && value.length === 2 && Number.isSafeInteger(value[0]) && typeof value[1] === 'string' && isJobId(value[1]))
      return { createdAtMs: value[0] as number, jobId: value[1] };
  } catch {
    // answered below
  }
  throw new ValidationError('INVALID_INPUT', 'after is not a cursor of this listing');
}

const numberOrNull = (value: AttributeValue | undefined): number | null => (value?.N === undefined ? null : Number(value.N));

function itemOf(item: Item): JobListItem {
  const result = item['result']?.S;
  return {
    id: item['jobId']?.S ?? '',
    status: item['status']?.S ?? '',
    operationName: item['operationName']?.S ?? null,
    requestedCost: Number(item['cost']?.N ?? '0'),
    actualCost: numberOrNull(item['actualCost']),
    errorCode: item['errorCode']?.S ?? null,
    createdAtMs: Number(item['createdAtMs']?.N ?? '0'),
    finishedAtMs: numberOrNull(item['finishedAtMs']),
    resultSummary: result === undefined ? null : result.slice(0, RESULT_SUMMARY_CHARS),
    resultChars: result === undefined ? null : result.length,
  };
}

export class DynamoJobList {
  private readonly table: string;

  constructor(
    private readonly client: DynamoDBClient,
    options: { tablePrefix: string },
  ) {
    this.table = jobsTableName(options.tablePrefix);
  }

  /** @throws ValidationError (first, after), DependencyError `DYNAMODB_UNAVAILABLE` */
  async list(input: { tenant: string; first: number; after: string | null }): Promise<JobListPage> {
    if (!Number.isInteger(input.first) || input.first < 1 || input.first > MAX_JOBS_PAGE)
      throw new ValidationError('INVALID_INPUT', `first must be an integer in 1..${MAX_JOBS_PAGE}`);
    const pk = `tenant#${input.tenant}`;
    const start = input.after === null ? undefined : decodeCursor(input.after);
    const keys: { jobId: string; createdAtMs: number }[] = [];
    let exclusive: Item | undefined =
      start === undefined
        ? undefined
        : { tenant: { S: input.tenant }, createdAtMs: { N: String(start.createdAtMs) }, pk: { S: pk }, sk: { S: `job#${start.jobId}` } };
    let hasMore = false;
    do {
      let reply;
      try {
        reply = await this.client.send(
          new QueryCommand({
            TableName: this.table,
            IndexName: TENANT_JOBS_INDEX,
            KeyConditionExpression: 'tenant = :t',
            ExpressionAttributeValues: { ':t': { S: input.tenant } },
            ScanIndexForward: false,
            Limit: input.first + 1 - keys.length,
            ...(exclusive === undefined ? {} : { ExclusiveStartKey: exclusive }),
          }),
        );
      } catch (error) {
        throw wrap(error);
      }
      for (const item of reply.Items ?? []) {
        const sk = item['sk']?.S ?? '';
        // the caller's own partition only (the index is keyed by the tenant attribute: checked again)
        if (item['pk']?.S !== pk || !sk.startsWith('job#')) continue;
        if (keys.length === input.first) {
          hasMore = true;
          break;
        }
        keys.push({ jobId: sk.slice('job#'.length), createdAtMs: Number(item['createdAtMs']?.N ?? '0') });
      }
      exclusive = reply.LastEvaluatedKey;
    } while (!hasMore && exclusive !== undefined && keys.length < input.first);
    hasMore ||= exclusive !== undefined && keys.length === input.first;
    const items = await this.read(pk, keys);
    const last = keys.at(-1);
    return { items, cursor: hasMore && last !== undefined ? encodeCursor(last.createdAtMs, last.jobId) : null };
  }

  private async read(pk: string, keys: { jobId: string }[]): Promise<JobListItem[]> {
    if (keys.length === 0) return [];
    const found = new Map<string, JobListItem>();
    let pending: Item[] = keys.map((key) => ({ pk: { S: pk }, sk: { S: `job#${key.jobId}` } }));
    for (let round = 0; pending.length > 0; round += 1) {
      if (round > 10) throw new DependencyError('DYNAMODB_UNAVAILABLE', 'DynamoDB left job keys unprocessed');
      let reply;
      try {
        reply = await this.client.send(
          new BatchGetItemCommand({
            RequestItems: {
              [this.table]: {
                Keys: pending,
                ConsistentRead: true,
                ProjectionExpression: 'jobId, #s, operationName, cost, actualCost, errorCode, createdAtMs, finishedAtMs, #r',
                ExpressionAttributeNames: { '#s': 'status', '#r': 'result' },
              },
            },
          }),
        );
      } catch (error) {
        throw wrap(error);
      }
      for (const item of reply.Responses?.[this.table] ?? []) found.set(item['jobId']?.S ?? '', itemOf(item));
      pending = reply.UnprocessedKeys?.[this.table]?.Keys ?? [];
    }
    return keys.map((key) => found.get(key.jobId)).filter((item): item is JobListItem => item !== undefined);
  }
}
