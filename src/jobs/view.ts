/**
 * What a caller sees of a deferred job (`GET /jobs/<id>` and the GraphQL
 * `job(id)` field): status, timestamps, costs, the stored result and the error
 * code. Jobs are read under the caller's own tenant only, so another tenant's
 * job id is simply not found. Pure apart from the `JobReader` port.
 */
import type { TenantId } from '../shared/index.js';
import type { JobReader } from './ports.js';
import { isJobId, type JobRecord } from './record.js';

/** A job as shown to its tenant. Times are epoch ms; costs integer units. */
export interface JobView {
  id: string;
  status: JobRecord['status'];
  operationName: string | null;
  requestedCost: number;
  actualCost: number | null;
  /** The stored `{ data, errors? }` of the run (null until it ran). */
  result: unknown;
  /** Stable code of a failed or expired job (null otherwise). */
  errorCode: string | null;
  createdAtMs: number;
  updatedAtMs: number;
  startedAtMs: number | null;
  finishedAtMs: number | null;
  expiresAtMs: number;
}

export function jobView(job: JobRecord): JobView {
  return {
    id: job.jobId,
    status: job.status,
    operationName: job.operationName,
    requestedCost: job.cost,
    actualCost: job.actualCost,
    result: job.result,
    errorCode: job.errorCode,
    createdAtMs: job.createdAtMs,
    updatedAtMs: job.updatedAtMs,
    startedAtMs: job.startedAtMs,
    finishedAtMs: job.finishedAtMs,
    expiresAtMs: job.expiresAtMs,
  };
}

/** The caller's job, or undefined (unknown id, malformed id, or another tenant's job). */
export async function readJob(reader: JobReader, tenant: TenantId, id: string): Promise<JobView | undefined> {
  if (!isJobId(id)) return undefined;
  const job = await reader.get(tenant, id);
  return job === undefined || job.tenant !== tenant ? undefined : jobView(job);
}
