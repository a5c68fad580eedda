/**
 * Starting tollgate workflows. Every start names an explicit id-conflict and
 * id-reuse policy, so a retried start is a no-op rather than a second run.
 */
import { WorkflowIdConflictPolicy, WorkflowIdReusePolicy, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { arrayFromPayloads, type SignalDefinition } from '@temporalio/common';
import type { CrossedThreshold, WarningSink } from '../metering/index.js';
import { accountWorkflowId, auditWorkflowId, jobSweepWorkflowId, meterPumpGroups, meterPumpId, shardsOfMeterId } from './ids.js';
import type {
  AccountTimings,
  AccountWarningsPayload,
  AuditSettings,
  JobSweepSettings,
  WarningRequest,
  accountWorkflow,
  MeterSettings,
  meterPump,
} from './workflows/index.js';
import { accountWarningsSignal, auditSettingsSignal, jobSweepSettingsSignal, meterSettingsSignal } from './workflows/index.js';

export interface EnsureMeterWorkflowsInput {
  /** The logical shards to pump, e.g. 0..DECIDER_SHARDS-1. */
  shards: readonly number[];
  /** Shards one pump workflow owns (aligned blocks, see meterPumpGroups). @default 1 */
  shardsPerPump?: number;
  taskQueue: string;
  settings: MeterSettings;
  /** Starts in flight at once. @default 16 */
  concurrency?: number;
  /** Workflow task timeout, ms: how soon a task held by a dead worker is handed out again. @default the server's (10 s) */
  workflowTaskTimeoutMs?: number;
}

/**
 * Ensures a pump (`meter/<first>-<last>`, workflow `meterPump`) runs for every
 * group of `shardsPerPump` shards without writing into the running ones'
 * histories (issue 19: a signal per pump per worker start grew every history
 * and made a cold worker's replays time out). A plain start with USE_EXISTING
 * starts a pump only where none runs (ALLOW_DUPLICATE: one that ended starts
 * again) and leaves a running one alone; the settings its current run started
 * with are read from that run's first history event (no worker involved), and
 * only a pump whose settings differ is signalled; it adopts them from its next
 * run. Then every other running pump of any of these shards (a `meter/<shard>`
 * of an older worker, or a pump of another grouping) is terminated: two pumps
 * of one shard stay correct (the ledger takes each event once) but waste work.
 * Safe to call on every worker start and from several workers at once, as long
 * as they agree on `shardsPerPump` (workers that disagree retire each other's
 * pumps at every start).
 * @returns how many pumps were told new settings, how many were retired, and why retiring failed if it did
 * @throws whatever the Temporal client throws when the server refuses a start or a read
 */
export async function ensureMeterWorkflows(
  client: Client,
  input: EnsureMeterWorkflowsInput,
): Promise<{ signalled: number; retired: number; retireError?: unknown }> {
  const groups = meterPumpGroups(input.shards, input.shardsPerPump ?? 1);
  const queue = [...groups];
  let signalled = 0;
  const ensureOne = async (shards: number[]): Promise<void> => {
    const workflowId = meterPumpId(shards[0] ?? 0, shards.at(-1));
    const handle = await client.workflow.start<typeof meterPump>('meterPump', {
      taskQueue: input.taskQueue,
      workflowId,
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      args: [{ shards, settings: input.settings }],
      ...(input.workflowTaskTimeoutMs === undefined ? {} : { workflowTaskTimeout: input.workflowTaskTimeoutMs }),
    });
    const running = await currentRunInput(client, workflowId);
    if (running !== undefined && 'settings' in running && isSameJson(running.settings, input.settings)) return;
    await handle.signal(meterSettingsSignal, input.settings);
    signalled += 1;
  };
  const lanes = Array.from({ length: Math.min(input.concurrency ?? 16, queue.length) }, async () => {
    for (let group = queue.shift(); group !== undefined; group = queue.shift()) await ensureOne(group);
  });
  await Promise.all(lanes);
  try {
    const retired = await retireOtherPumps(client, {
      shards: new Set(input.shards),
      keep: new Set(groups.map((shards) => meterPumpId(shards[0] ?? 0, shards.at(-1)))),
    });
    return { signalled, retired };
  } catch (error) {
    // a visibility store that cannot list by type and status (or a failed terminate) must not stop the worker: its
    // pumps run; older pumps of the same shards, if any, keep pumping beside them (exact, only wasteful)
    return { signalled, retired: 0, retireError: error };
  }
}

/**
 * Terminates every running pump workflow (`meterShard` or `meterPump`) that
 * owns one of `shards` and is not in `keep`. Its batch in flight, if any,
 * finishes or is reclaimed by the pump that keeps the shard.
 * @returns how many were terminated
 */
async function retireOtherPumps(client: Client, input: { shards: Set<number>; keep: Set<string> }): Promise<number> {
  let retired = 0;
  const query = `(WorkflowType = 'meterShard' OR WorkflowType = 'meterPump') AND ExecutionStatus = 'Running'`;
  for await (const run of client.workflow.list({ query })) {
    if (input.keep.has(run.workflowId)) continue;
    const range = shardsOfMeterId(run.workflowId);
    if (range === undefined) continue;
    let isOwned = false;
    for (let shard = range.first; shard <= range.last && !isOwned; shard += 1) isOwned = input.shards.has(shard);
    if (!isOwned) continue;
    try {
      await client.workflow.getHandle(run.workflowId).terminate(`replaced by the pumps of ${input.keep.size} shard group(s)`);
      retired += 1;
    } catch (error) {
      // it ended meanwhile, or another worker retired it
      if (!(error instanceof WorkflowNotFoundError)) throw error;
    }
  }
  return retired;
}

/** The input the workflow's current run started with (its first history event), or undefined when unreadable. */
async function currentRunInput(client: Client, workflowId: string): Promise<object | undefined> {
  const page = await client.workflowService.getWorkflowExecutionHistory({
    namespace: client.options.namespace,
    execution: { workflowId },
    maximumPageSize: 1,
  });
  const payloads = page.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads;
  const [first] = arrayFromPayloads(client.options.loadedDataConverter.payloadConverter, payloads);
  return typeof first === 'object' && first !== null ? first : undefined;
}

/** Equality of two JSON-safe values, key order ignored. */
function isSameJson(a: unknown, b: unknown): boolean {
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) return a === b;
  const aKeys = Object.keys(a).filter((key) => (a as Record<string, unknown>)[key] !== undefined);
  const bKeys = Object.keys(b).filter((key) => (b as Record<string, unknown>)[key] !== undefined);
  if (aKeys.length !== bKeys.length) return false;
  return aKeys.every((key) => isSameJson((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]));
}

export interface EnsureAuditWorkflowInput {
  /** @default 'all' */
  scope?: string;
  taskQueue: string;
  settings: AuditSettings;
}

/**
 * Signals-with-start a workflow that runs forever under a scope (the audit, the
 * jobs sweep): a running one is kept (its position and counts) and told the
 * settings, adopted from its next run (USE_EXISTING); one that ended (failed,
 * terminated) is started again (ALLOW_DUPLICATE).
 * @returns the run id of the (possibly already running) workflow
 */
async function ensureScopedWorkflow<S>(
  client: Client,
  input: { workflowType: string; workflowId: string; scope: string; taskQueue: string; settings: S; signal: SignalDefinition<[S]> },
): Promise<string> {
  const handle = await client.workflow.signalWithStart<(start: { scope: string; settings: S }) => Promise<never>, [S]>(input.workflowType, {
    taskQueue: input.taskQueue,
    workflowId: input.workflowId,
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
    args: [{ scope: input.scope, settings: input.settings }],
    signal: input.signal,
    signalArgs: [input.settings],
  });
  return handle.signaledRunId;
}

/**
 * Ensures the `audit/<scope>` workflow (`auditLedger`) runs (see ensureScopedWorkflow).
 * Safe to call on every worker start and from several workers.
 * @returns the run id of the (possibly already running) audit
 */
export async function ensureAuditWorkflow(client: Client, input: EnsureAuditWorkflowInput): Promise<string> {
  const scope = input.scope ?? 'all';
  const workflowId = auditWorkflowId(scope);
  return ensureScopedWorkflow(client, {
    workflowType: 'auditLedger',
    workflowId,
    scope,
    taskQueue: input.taskQueue,
    settings: input.settings,
    signal: auditSettingsSignal,
  });
}

export interface EnsureJobSweepWorkflowInput {
  /** @default 'all' */
  scope?: string;
  taskQueue: string;
  settings: JobSweepSettings;
}

/**
 * Ensures the `jobs-sweep/<scope>` workflow (`sweepJobs`) runs (see ensureScopedWorkflow).
 * Safe to call on every worker start and from several workers.
 * @returns the run id of the (possibly already running) sweep
 */
export async function ensureJobSweepWorkflow(client: Client, input: EnsureJobSweepWorkflowInput): Promise<string> {
  const scope = input.scope ?? 'all';
  const workflowId = jobSweepWorkflowId(scope);
  return ensureScopedWorkflow(client, {
    workflowType: 'sweepJobs',
    workflowId,
    scope,
    taskQueue: input.taskQueue,
    settings: input.settings,
    signal: jobSweepSettingsSignal,
  });
}

export interface EnsureAccountWorkflowInput {
  tenant: string;
  taskQueue: string;
  timings: AccountTimings;
  /** Warnings to hand over with the start (none: just make sure it runs). */
  warnings?: WarningRequest[];
}

/**
 * Signals-with-start `account/<tenant>`: a running account workflow receives the
 * warnings (USE_EXISTING: never a second run beside it); one that ended
 * (failed, terminated) is started again (ALLOW_DUPLICATE) and picks its state
 * up from DynamoDB. Safe to call from many pumps at once.
 */
export async function ensureAccountWorkflow(client: Client, input: EnsureAccountWorkflowInput): Promise<void> {
  await client.workflow.signalWithStart<typeof accountWorkflow, [AccountWarningsPayload]>('accountWorkflow', {
    taskQueue: input.taskQueue,
    workflowId: accountWorkflowId(input.tenant),
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
    args: [{ tenant: input.tenant, timings: input.timings }],
    signal: accountWarningsSignal,
    signalArgs: [{ warnings: input.warnings ?? [] }],
  });
}

/**
 * The pump's `WarningSink` on Temporal: one signal-with-start of
 * `account/<tenant>` per tenant of a batch, carrying its crossings.
 */
export class TemporalWarningSink implements WarningSink {
  constructor(
    private readonly client: Client,
    private readonly options: { taskQueue: string; timings: AccountTimings; concurrency?: number },
  ) {}

  async notify(crossings: readonly CrossedThreshold[]): Promise<void> {
    const byTenant = new Map<string, WarningRequest[]>();
    for (const crossing of crossings) {
      const list = byTenant.get(crossing.tenant) ?? [];
      list.push({ periodStartMs: crossing.periodStartMs, limitId: crossing.limitId, percent: crossing.percent });
      byTenant.set(crossing.tenant, list);
    }
    const queue = [...byTenant.entries()];
    const lanes = Array.from({ length: Math.min(this.options.concurrency ?? 8, queue.length) }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
        await ensureAccountWorkflow(this.client, {
          tenant: item[0],
          taskQueue: this.options.taskQueue,
          timings: this.options.timings,
          warnings: item[1],
        });
      }
    });
    await Promise.all(lanes);
  }
}
