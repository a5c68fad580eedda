/**
 * A deferred job as stored: its record, its submission, the open-jobs index
 * constants, and the codec between the record and its DynamoDB item. Pure: the
 * store (`store.ts`) does the I/O.
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { InvariantError, ValidationError, parseTenantId, type TenantId } from '../shared/index.js';

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'expired';

/** The terminal statuses: a job in one of them never changes again. */
export const FINISHED_JOB_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'expired'];

/** A job as stored. Times are epoch ms; costs integer units. */
export interface JobRecord {
  jobId: string;
  tenant: TenantId;
  keyId: string;
  requestId: string;
  operationName: string | null;
  status: JobStatus;
  /** Requested cost at submission. */
  cost: number;
  /** Measured cost of the run (null until it ran). */
  actualCost: number | null;
  /** The GraphQL result `{ data, errors? }` of the run (null until it ran). */
  result: unknown;
  /** Stable code of a failed or expired job. */
  errorCode: string | null;
  createdAtMs: number;
  updatedAtMs: number;
  startedAtMs: number | null;
  finishedAtMs: number | null;
  /** When the job stops waiting for its limit and ends expired. */
  expiresAtMs: number;
  /** Whether its tenant asked for a webhook when it finishes (`Tollgate-Notify: webhook`). */
  isNotifyRequested: boolean;
  /** The finish notice: delivered (a 2xx from the tenant's webhook) or skipped (no webhook configured); null before. */
  notification: 'delivered' | 'skipped' | null;
  /** What the job runs, kept until it finishes (null: finished, recorded before submissions were kept, or too large to keep). */
  submission: JobSubmission | null;
}

/** What a job runs: enough to start its workflow again from the record alone. */
export interface JobSubmission {
  planId: string;
  query: string;
  variables: Record<string, unknown>;
}

/** Largest submission kept in a job record (JSON chars); with the result (MAX_RESULT_CHARS) the item stays under 400 KB. */
export const MAX_SUBMISSION_CHARS = 32_000;

/** What a restart of a job's workflow from its record did (`restartDeferredJob`). */
export type RestartOutcome = 'started' | 'finished' | 'unknown' | 'no-submission' | 'completed';

/** A queued job as the wake sees it. */
export interface QueuedJob {
  jobId: string;
  createdAtMs: number;
}

/** The sparse index of unfinished jobs (see the file header); must agree with infra/tables.ts. */
export const OPEN_JOBS_INDEX = 'open-jobs';

/** Partitions of the open-jobs index. */
export const OPEN_JOB_SHARDS = 16;

/** The open-jobs partition of a job: from the last hex digit of its (random-looking) id. */
export function openJobShard(jobId: string): number {
  return Number.parseInt(jobId.slice(-1), 16) % OPEN_JOB_SHARDS;
}

/** An unfinished job as the open-jobs index lists it. */
export interface OpenJob {
  tenant: TenantId;
  jobId: string;
  createdAtMs: number;
}

export interface CreateJobInput {
  jobId: string;
  tenant: TenantId;
  keyId: string;
  requestId: string;
  operationName: string | null;
  cost: number;
  createdAtMs: number;
  expiresAtMs: number;
  /** The tenant's cap on unfinished jobs. */
  maxOpenJobs: number;
  /** Send a signed notice to the tenant's webhook when the job finishes. @default false */
  isNotifyRequested?: boolean;
  /** What it runs, kept while it is unfinished when it fits MAX_SUBMISSION_CHARS (otherwise only its client's retry can restart it). */
  submission?: JobSubmission;
}

/** Physical name of the jobs table; must agree with infra/tables.ts. */
export function jobsTableName(prefix: string): string {
  return `${prefix}jobs`;
}

/** `j-` and 32 hex digits (see `deferredJobId`). */
const JOB_ID = /^j-[0-9a-f]{32}$/;

/** True for a well-formed job id (anything else is not found, without a read). */
export const isJobId = (raw: string): boolean => JOB_ID.test(raw);

/**
 * @throws ValidationError `INVALID_ID` for anything but a job id
 */
export function parseJobId(raw: unknown): string {
  if (typeof raw !== 'string' || !isJobId(raw)) throw new ValidationError('INVALID_ID', 'invalid job id: expected j- and 32 hex digits');
  return raw;
}

/** Largest stored result (JSON chars): a DynamoDB item holds at most 400 KB. */
export const MAX_RESULT_CHARS = 350_000;

function numberOrNull(value: AttributeValue | undefined): number | null {
  return value?.N === undefined ? null : Number(value.N);
}

/** The record of a stored job item. @throws InvariantError when the item is malformed */
export function decodeJob(item: Record<string, AttributeValue>): JobRecord {
  const status = item['status']?.S;
  if (status === undefined || !['queued', 'running', 'succeeded', 'failed', 'expired'].includes(status)) {
    throw new InvariantError(`stored job has status ${String(status)}`);
  }
  const resultJson = item['result']?.S;
  return {
    jobId: item['jobId']?.S ?? '',
    tenant: parseTenantId(item['tenant']?.S),
    keyId: item['keyId']?.S ?? '',
    requestId: item['requestId']?.S ?? '',
    operationName: item['operationName']?.S ?? null,
    status: status as JobStatus,
    cost: Number(item['cost']?.N ?? '0'),
    actualCost: numberOrNull(item['actualCost']),
    result: resultJson === undefined ? null : (JSON.parse(resultJson) as unknown),
    errorCode: item['errorCode']?.S ?? null,
    createdAtMs: Number(item['createdAtMs']?.N ?? '0'),
    updatedAtMs: Number(item['updatedAtMs']?.N ?? '0'),
    startedAtMs: numberOrNull(item['startedAtMs']),
    finishedAtMs: numberOrNull(item['finishedAtMs']),
    expiresAtMs: Number(item['expiresAtMs']?.N ?? '0'),
    isNotifyRequested: item['isNotifyRequested']?.BOOL === true,
    notification: item['notification']?.S === 'delivered' || item['notification']?.S === 'skipped' ? item['notification'].S : null,
    submission: decodeSubmission(item['submission']?.S),
  };
}

function decodeSubmission(json: string | undefined): JobSubmission | null {
  if (json === undefined) return null;
  const value = JSON.parse(json) as Partial<JobSubmission>;
  if (
    typeof value.planId !== 'string' ||
    typeof value.query !== 'string' ||
    typeof value.variables !== 'object' ||
    value.variables === null
  ) {
    throw new InvariantError('stored job submission is malformed');
  }
  return { planId: value.planId, query: value.query, variables: value.variables };
}

/** The submission as stored, or undefined when it is too large to keep. */
export function encodeSubmission(submission: JobSubmission): string | undefined {
  const json = JSON.stringify({ planId: submission.planId, query: submission.query, variables: submission.variables });
  return json.length <= MAX_SUBMISSION_CHARS ? json : undefined;
}
