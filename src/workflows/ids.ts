/**
 * Workflow ids, built only from business keys (STYLE §7): a retried start of
 * the same business act finds the same workflow. Random ids are banned.
 */
import { ValidationError, parseTenantId } from '../shared/index.js';
import { parseJobId } from '../jobs/index.js';

/** `meter/<shard>`: the usage pump of one logical shard (one per shard, ever). */
export function meterWorkflowId(shard: number): string {
  if (!Number.isInteger(shard) || shard < 0 || shard >= 16_384) {
    throw new ValidationError('INVALID_INPUT', `a shard is an integer in [0, 16384), got ${String(shard)}`);
  }
  return `meter/${shard}`;
}

/** `audit/<scope>`: the metering audit (one per scope, ever; `all` audits every shard). */
export function auditWorkflowId(scope: string): string {
  if (!/^[a-z0-9][a-z0-9_-]{0,63}$/.test(scope))
    throw new ValidationError('INVALID_ID', `invalid audit scope ${JSON.stringify(scope.slice(0, 80))}`);
  return `audit/${scope}`;
}

/** `jobs-sweep/<scope>`: the sweep of unfinished deferred jobs (one per scope, ever; `all` sweeps every tenant). */
export function jobSweepWorkflowId(scope: string): string {
  if (!/^[a-z0-9][a-z0-9_-]{0,63}$/.test(scope))
    throw new ValidationError('INVALID_ID', `invalid jobs sweep scope ${JSON.stringify(scope.slice(0, 80))}`);
  return `jobs-sweep/${scope}`;
}

/** `account/<tenant>`: the tenant's entity workflow (warnings, period close), one per tenant, ever. */
export function accountWorkflowId(tenant: string): string {
  return `account/${parseTenantId(tenant)}`;
}

/** `job/<tenant>/<jobId>`: one deferred request (the job id is derived from the tenant and request id). */
export function jobWorkflowId(input: { tenant: string; jobId: string }): string {
  return `job/${parseTenantId(input.tenant)}/${parseJobId(input.jobId)}`;
}
