/**
 * Deferred jobs in DynamoDB (the `<prefix>jobs` table, string `pk`/`sk`).
 *
 * Layout (one partition per tenant, so a job can only be read under its own tenant):
 * - `pk = tenant#<tenant>`, `sk = job#<jobId>`: the job (status, timestamps,
 *   requested and actual cost, the stored result as JSON, the error code, and
 *   while it is unfinished its `submission`: what its workflow needs to be
 *   started again by the account workflow's sweep when its client never retries).
 * - `pk = tenant#<tenant>`, `sk = queue`: `open`, the number of the tenant's
 *   unfinished jobs, bounded by the per-tenant cap.
 *
 * While a job is unfinished its item also carries `openShard` (`open#<0..15>`,
 * from its id) and `openSinceMs` (its creation time): the keys of the sparse
 * index `open-jobs`, which lists every unfinished job of every tenant, oldest
 * first per shard, for the sweep (`sweepOpenJobs`). Finishing removes them, so
 * the index only ever holds unfinished jobs; 16 shards spread its writes.
 *
 * Every write is idempotent under the job id: recording a job is a conditional
 * put (`attribute_not_exists`) in the same transaction as the counter
 * increment, so N concurrent submits of one job count it once; a status change
 * is conditional on the job not being finished, and finishing decrements the
 * counter in the same transaction, so a retried finish changes nothing.
 */
import {
  ConditionalCheckFailedException,
  GetItemCommand,
  QueryCommand,
  TransactWriteItemsCommand,
  TransactionCanceledException,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import type { OpenJobsCursor } from './model/sweep.js';
import { CapacityError, DependencyError, InvariantError, ValidationError, parseTenantId, type TenantId } from '../shared/index.js';
import {
  decodeJob,
  encodeSubmission,
  jobsTableName,
  openJobShard,
  OPEN_JOBS_INDEX,
  OPEN_JOB_SHARDS,
  type CreateJobInput,
  type JobRecord,
  type OpenJob,
  type QueuedJob,
} from './record.js';

const pkOf = (tenant: TenantId): AttributeValue => ({ S: `tenant#${tenant}` });
const jobKey = (tenant: TenantId, jobId: string): Record<string, AttributeValue> => ({ pk: pkOf(tenant), sk: { S: `job#${jobId}` } });
const queueKey = (tenant: TenantId): Record<string, AttributeValue> => ({ pk: pkOf(tenant), sk: { S: 'queue' } });

const isConditionFailed = (error: unknown, index: number): boolean =>
  error instanceof TransactionCanceledException && error.CancellationReasons?.[index]?.Code === 'ConditionalCheckFailed';
const wrap = (error: unknown, what: string): DependencyError =>
  new DependencyError('DYNAMODB_UNAVAILABLE', `DynamoDB did not ${what}`, { cause: error });

/** Jobs on DynamoDB. */
export class DynamoJobStore {
  private readonly table: string;

  constructor(
    private readonly client: DynamoDBClient,
    options: { tablePrefix: string },
  ) {
    this.table = jobsTableName(options.tablePrefix);
  }

  /**
   * Records a queued job and counts it against the tenant's cap, or finds the
   * job already recorded under that id (then nothing changes).
   * @throws CapacityError `JOB_QUEUE_FULL` when the tenant already has `maxOpenJobs` unfinished jobs
   * @throws DependencyError `DYNAMODB_UNAVAILABLE` (a retry is safe)
   */
  async create(input: CreateJobInput): Promise<{ job: JobRecord; isNew: boolean }> {
    const submission = input.submission === undefined ? undefined : encodeSubmission(input.submission);
    const item: Record<string, AttributeValue> = {
      ...jobKey(input.tenant, input.jobId),
      jobId: { S: input.jobId },
      tenant: { S: input.tenant },
      keyId: { S: input.keyId },
      requestId: { S: input.requestId },
      status: { S: 'queued' },
      cost: { N: String(input.cost) },
      createdAtMs: { N: String(input.createdAtMs) },
      updatedAtMs: { N: String(input.createdAtMs) },
      expiresAtMs: { N: String(input.expiresAtMs) },
      isNotifyRequested: { BOOL: input.isNotifyRequested === true },
      ...(input.operationName === null ? {} : { operationName: { S: input.operationName } }),
      ...(submission === undefined ? {} : { submission: { S: submission } }),
      openShard: { S: `open#${openJobShard(input.jobId)}` },
      openSinceMs: { N: String(input.createdAtMs) },
    };
    try {
      await this.client.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            { Put: { TableName: this.table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' } },
            {
              Update: {
                TableName: this.table,
                Key: queueKey(input.tenant),
                UpdateExpression: 'SET #open = if_not_exists(#open, :zero) + :one',
                ConditionExpression: 'attribute_not_exists(#open) OR #open < :cap',
                ExpressionAttributeNames: { '#open': 'open' },
                ExpressionAttributeValues: { ':zero': { N: '0' }, ':one': { N: '1' }, ':cap': { N: String(input.maxOpenJobs) } },
              },
            },
          ],
        }),
      );
      return { job: decodeJob(item), isNew: true };
    } catch (error) {
      if (isConditionFailed(error, 0)) {
        const existing = await this.get(input.tenant, input.jobId);
        if (existing === undefined) throw new InvariantError(`job ${input.jobId} exists and cannot be read`);
        return { job: existing, isNew: false };
      }
      if (isConditionFailed(error, 1)) {
        throw new CapacityError(`tenant ${input.tenant} already has ${input.maxOpenJobs} unfinished deferred jobs`, {
          details: { tenant: input.tenant, maxOpenJobs: input.maxOpenJobs },
        });
      }
      throw wrap(error, 'record the job');
    }
  }

  /**
   * The job, read consistently; undefined when the tenant has no job with that id.
   * @throws DependencyError `DYNAMODB_UNAVAILABLE`
   */
  async get(tenant: TenantId, jobId: string): Promise<JobRecord | undefined> {
    let reply;
    try {
      reply = await this.client.send(new GetItemCommand({ TableName: this.table, Key: jobKey(tenant, jobId), ConsistentRead: true }));
    } catch (error) {
      throw wrap(error, 'read the job');
    }
    return reply.Item === undefined ? undefined : decodeJob(reply.Item);
  }

  /**
   * The tenant's jobs still waiting for admission (`queued`), oldest first: the
   * ones a quota reset wakes. Consistent reads, every page.
   * @throws DependencyError `DYNAMODB_UNAVAILABLE`
   */
  async listQueued(tenant: TenantId): Promise<QueuedJob[]> {
    const jobs: QueuedJob[] = [];
    let startKey: Record<string, AttributeValue> | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new QueryCommand({
            TableName: this.table,
            KeyConditionExpression: 'pk = :pk AND begins_with(sk, :job)',
            FilterExpression: '#status = :queued',
            ExpressionAttributeNames: { '#status': 'status' },
            ExpressionAttributeValues: { ':pk': pkOf(tenant), ':job': { S: 'job#' }, ':queued': { S: 'queued' } },
            ProjectionExpression: 'jobId, createdAtMs',
            ConsistentRead: true,
            ...(startKey === undefined ? {} : { ExclusiveStartKey: startKey }),
          }),
        );
      } catch (error) {
        throw wrap(error, 'list the queued jobs');
      }
      for (const item of page.Items ?? []) {
        const jobId = item['jobId']?.S;
        if (jobId !== undefined) jobs.push({ jobId, createdAtMs: Number(item['createdAtMs']?.N ?? '0') });
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey !== undefined);
    return jobs.sort((a, b) => a.createdAtMs - b.createdAtMs || (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0));
  }

  /**
   * One page of the unfinished jobs of every tenant in one open-jobs shard that were
   * created before `beforeMs`, oldest first. The index is eventually consistent: a job
   * may be listed a moment after it finished (callers read the job before acting).
   * @throws DependencyError `DYNAMODB_UNAVAILABLE`
   */
  async listOpen(input: {
    shard: number;
    beforeMs: number;
    limit: number;
    after?: OpenJobsCursor;
  }): Promise<{ jobs: OpenJob[]; next: OpenJobsCursor | null }> {
    if (!Number.isInteger(input.shard) || input.shard < 0 || input.shard >= OPEN_JOB_SHARDS) {
      throw new ValidationError('INVALID_INPUT', `an open-jobs shard is an integer in [0, ${OPEN_JOB_SHARDS}), got ${String(input.shard)}`);
    }
    const shardKey = `open#${input.shard}`;
    let page;
    try {
      page = await this.client.send(
        new QueryCommand({
          TableName: this.table,
          IndexName: OPEN_JOBS_INDEX,
          KeyConditionExpression: 'openShard = :shard AND openSinceMs < :before',
          ExpressionAttributeValues: { ':shard': { S: shardKey }, ':before': { N: String(input.beforeMs) } },
          Limit: input.limit,
          ...(input.after === undefined
            ? {}
            : {
                ExclusiveStartKey: {
                  pk: { S: input.after.pk },
                  sk: { S: input.after.sk },
                  openShard: { S: shardKey },
                  openSinceMs: { N: String(input.after.openSinceMs) },
                },
              }),
        }),
      );
    } catch (error) {
      throw wrap(error, 'list the open jobs');
    }
    const jobs: OpenJob[] = [];
    for (const item of page.Items ?? []) {
      const pk = item['pk']?.S ?? '';
      const sk = item['sk']?.S ?? '';
      if (!pk.startsWith('tenant#') || !sk.startsWith('job#')) continue;
      jobs.push({
        tenant: parseTenantId(pk.slice('tenant#'.length)),
        jobId: sk.slice('job#'.length),
        createdAtMs: Number(item['openSinceMs']?.N ?? '0'),
      });
    }
    const last = page.LastEvaluatedKey;
    const next =
      last === undefined ? null : { pk: last['pk']?.S ?? '', sk: last['sk']?.S ?? '', openSinceMs: Number(last['openSinceMs']?.N ?? '0') };
    return { jobs, next };
  }

  /** The tenant's count of unfinished jobs (what the cap is checked against). */
  async openJobs(tenant: TenantId): Promise<number> {
    let reply;
    try {
      reply = await this.client.send(new GetItemCommand({ TableName: this.table, Key: queueKey(tenant), ConsistentRead: true }));
    } catch (error) {
      throw wrap(error, 'read the job queue');
    }
    return Number(reply.Item?.['open']?.N ?? '0');
  }

  /**
   * queued → running (a retry, or a job already running, changes nothing but `updatedAtMs`).
   * @returns false when the job is already finished (or unknown)
   */
  async markRunning(input: { tenant: TenantId; jobId: string; nowMs: number }): Promise<boolean> {
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key: jobKey(input.tenant, input.jobId),
          UpdateExpression: 'SET #status = :running, updatedAtMs = :now, startedAtMs = if_not_exists(startedAtMs, :now)',
          ConditionExpression: '#status IN (:queued, :running)',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':running': { S: 'running' }, ':queued': { S: 'queued' }, ':now': { N: String(input.nowMs) } },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw wrap(error, 'mark the job running');
    }
  }

  /**
   * Stores the run's result once. A second store (a retried activity whose
   * first attempt stored it) keeps the first and returns it.
   */
  async storeResult(input: {
    tenant: TenantId;
    jobId: string;
    result: unknown;
    actualCost: number;
    nowMs: number;
  }): Promise<{ result: unknown; actualCost: number }> {
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key: jobKey(input.tenant, input.jobId),
          UpdateExpression: 'SET #result = :result, actualCost = :actual, updatedAtMs = :now',
          ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(#result)',
          ExpressionAttributeNames: { '#result': 'result' },
          ExpressionAttributeValues: {
            ':result': { S: JSON.stringify(input.result) },
            ':actual': { N: String(input.actualCost) },
            ':now': { N: String(input.nowMs) },
          },
        }),
      );
      return { result: input.result, actualCost: input.actualCost };
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw wrap(error, 'store the job result');
    }
    const stored = await this.get(input.tenant, input.jobId);
    if (stored === undefined || stored.actualCost === null) throw new InvariantError(`job ${input.jobId} has no stored result to keep`);
    return { result: stored.result, actualCost: stored.actualCost };
  }

  /**
   * Records that the job's finish notice went out (or was skipped), once.
   * @returns false when it was recorded before (a retry: nothing changes)
   * @throws DependencyError when DynamoDB fails
   */
  async markNotified(input: { tenant: TenantId; jobId: string; notification: 'delivered' | 'skipped'; nowMs: number }): Promise<boolean> {
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key: jobKey(input.tenant, input.jobId),
          UpdateExpression: 'SET notification = :notification, notifiedAtMs = :now',
          ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(notification)',
          ExpressionAttributeValues: { ':notification': { S: input.notification }, ':now': { N: String(input.nowMs) } },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw wrap(error, 'record the job notice');
    }
  }

  /**
   * Finishes the job and frees its place in the tenant's queue, once: a job
   * already finished is left as it is. Its submission is dropped (nothing
   * restarts a finished job).
   * @returns false when the job was already finished
   */
  async finish(input: {
    tenant: TenantId;
    jobId: string;
    status: 'succeeded' | 'failed' | 'expired';
    errorCode: string | null;
    nowMs: number;
  }): Promise<boolean> {
    const jobUpdate = {
      TableName: this.table,
      Key: jobKey(input.tenant, input.jobId),
      UpdateExpression: `SET #status = :status, updatedAtMs = :now, finishedAtMs = :now${input.errorCode === null ? '' : ', errorCode = :code'} REMOVE submission, openShard, openSinceMs`,
      ConditionExpression: '#status IN (:queued, :running)',
      ExpressionAttributeNames: { '#status': 'status' },
      ExpressionAttributeValues: {
        ':status': { S: input.status },
        ':queued': { S: 'queued' },
        ':running': { S: 'running' },
        ':now': { N: String(input.nowMs) },
        ...(input.errorCode === null ? {} : { ':code': { S: input.errorCode } }),
      },
    };
    try {
      await this.client.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            { Update: jobUpdate },
            {
              Update: {
                TableName: this.table,
                Key: queueKey(input.tenant),
                UpdateExpression: 'SET #open = #open - :one',
                ConditionExpression: '#open > :zero',
                ExpressionAttributeNames: { '#open': 'open' },
                ExpressionAttributeValues: { ':one': { N: '1' }, ':zero': { N: '0' } },
              },
            },
          ],
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailed(error, 0)) return false;
      if (!isConditionFailed(error, 1)) throw wrap(error, 'finish the job');
    }
    // The counter is already 0 (it cannot go negative): finish the job alone.
    try {
      await this.client.send(new UpdateItemCommand(jobUpdate));
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw wrap(error, 'finish the job');
    }
  }
}
