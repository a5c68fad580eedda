/**
 * Workflow ids, built only from business keys (STYLE §7): a retried start of
 * the same business act finds the same workflow. Random ids are banned.
 */
import { ValidationError, parseTenantId } from '../shared/index.js';
import { parseJobId } from '../jobs/index.js';

const SHARD_LIMIT = 16_384;

function checkShard(shard: number): void {
  if (!Number.isInteger(shard) || shard < 0 || shard >= SHARD_LIMIT) {
    throw new ValidationError('INVALID_INPUT', `a shard is an integer in [0, 16384), got ${String(shard)}`);
  }
}

/** `meter/<shard>`: the usage pump of one logical shard as older workers ran it (`meterShard`); see meterPumpId. */
export function meterWorkflowId(shard: number): string {
  checkShard(shard);
  return `meter/${shard}`;
}

/** `meter/<first>-<last>`: the usage pump (`meterPump`) of the consecutive shards first..last (one per group, ever). */
export function meterPumpId(first: number, last: number = first): string {
  checkShard(first);
  checkShard(last);
  if (last < first) throw new ValidationError('INVALID_INPUT', `a pump's last shard comes after its first, got ${first}-${last}`);
  return `meter/${first}-${last}`;
}

/** The shards a pump workflow id names (`meter/<shard>` or `meter/<first>-<last>`), or undefined for another id. */
export function shardsOfMeterId(workflowId: string): { first: number; last: number } | undefined {
  const match = /^meter\/(\d{1,5})(?:-(\d{1,5}))?$/.exec(workflowId);
  if (match === null) return undefined;
  const first = Number(match[1]);
  const last = match[2] === undefined ? first : Number(match[2]);
  return first <= last && last < SHARD_LIMIT ? { first, last } : undefined;
}

/**
 * The fleet's pumps: `shards` cut into aligned blocks of `shardsPerPump`
 * (0..15, 16..31, …), each block's shards cut again where they stop being
 * consecutive. Aligned blocks keep a shard in the same pump whatever other
 * shards a caller ensures, so callers ensuring different shards never name
 * the same pump. @returns each pump's shards, ascending
 */
export function meterPumpGroups(shards: readonly number[], shardsPerPump: number): number[][] {
  if (!Number.isInteger(shardsPerPump) || shardsPerPump < 1) {
    throw new ValidationError('INVALID_INPUT', `shards per pump is a positive integer, got ${String(shardsPerPump)}`);
  }
  const sorted = [...new Set(shards)].sort((a, b) => a - b);
  const groups: number[][] = [];
  for (const shard of sorted) {
    checkShard(shard);
    const current = groups.at(-1);
    const previous = current?.at(-1);
    const isSameBlock = previous !== undefined && Math.floor(previous / shardsPerPump) === Math.floor(shard / shardsPerPump);
    if (current !== undefined && previous === shard - 1 && isSameBlock) current.push(shard);
    else groups.push([shard]);
  }
  return groups;
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
