/**
 * accountWorkflow (`account/<tenant>`): the tenant's entity workflow.
 *
 * - Warnings: the pump signals the quota thresholds requests crossed
 *   (`accountWarningsSignal`, signal-with-start). Each (period, limit, percent)
 *   is delivered once: deduped here for the current period (carried across
 *   continue-as-new), and by the DynamoDB record of the warning for any period
 *   (the source of truth: a delivered record is never sent again).
 * - Period close: a durable timer until the end of the account's billing
 *   period (anchor and zone); then statement version 1, then the tenant's
 *   queued deferred jobs are woken, oldest first and at most
 *   `ACCOUNT_WAKE_MAX_JOBS`; a queued job whose workflow is gone is started
 *   again from its record (the sweep of jobs recorded while Temporal was
 *   down). Period quotas are reset by key: the new period is a new Redis key,
 *   so there is nothing to reset and a replayed close resets nothing twice.
 *   The workflow then continues as new in the next period.
 * - Grace: `graceMs` after the end, the closed period is finalized and re-rated
 *   (statement version 2). Events arriving after it are credited by the ledger
 *   to the next period (`lateOf`).
 * - Continue-as-new at each period and when Temporal suggests it, after every
 *   handler and delivery finished; warnings not yet handed to a delivery are
 *   carried in the input, so no signal is lost.
 */
import {
  ActivityFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  log,
  patched,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { AccountActivities, WarningInput } from '../activities/index.js';

/** Timing of the account workflow, from configuration (`ACCOUNT_*`; tests use seconds). */
export interface AccountTimings {
  /** After a period ends, how long its late events still count in it, ms. */
  graceMs: number;
  /** Start-to-close timeout of load/close/finalize/wake, ms. */
  activityTimeoutMs: number;
  /** Start-to-close timeout of one delivery attempt (webhook timeout plus the record writes), ms. */
  deliveryTimeoutMs: number;
  webhookRetryInitialMs: number;
  webhookRetryMaxMs: number;
  webhookMaxAttempts: number;
  /** Without stored settings, how often to look for them again, ms. */
  noAccountRecheckMs: number;
}

/** A threshold crossing as signalled by the pump. */
export interface WarningRequest {
  periodStartMs: number;
  limitId: string;
  percent: number;
}

export interface ClosedPeriod {
  startMs: number;
  endMs: number;
  nextStartMs: number;
  /** When the grace window ends and the period is finalized, epoch ms. */
  graceEndsAtMs: number;
}

/** What one run hands to the next (continue-as-new). */
export interface AccountCarry {
  /** The open period (absent before the settings are first read, or while the tenant has none). */
  period?: { startMs: number; endMs: number };
  /** `limitId:percent` of the warnings of the open period already handed to a delivery. */
  sent: string[];
  /** Closed periods waiting for the end of their grace window. */
  closed: ClosedPeriod[];
  /** Warnings signalled but not yet handed to a delivery. */
  queue: WarningRequest[];
  counters: AccountCounters;
}

export interface AccountCounters {
  runs: number;
  /** Warnings received by signal (including duplicates). */
  received: number;
  /** Deliveries started (one per new period/limit/percent in a run). */
  deliveries: number;
  /** Deliveries that moved a record from pending now (sent or skipped). */
  finished: number;
  /** Deliveries given up on (retries exhausted or a non-retryable failure), recorded as failed. Absent in runs before it existed. */
  failed?: number;
  closes: number;
  finalizations: number;
  woken: number;
  /** Queued jobs whose workflow was gone, started again from their record at a close. Absent in runs before it existed. */
  restarted?: number;
  /** Queued jobs whose workflow was gone and could not be started again. Absent in runs before it existed. */
  stranded?: number;
}

export interface AccountWorkflowInput {
  tenant: string;
  timings: AccountTimings;
  /** Carried over by continue-as-new; absent on the first start. */
  state?: AccountCarry;
}

export interface AccountWarningsPayload {
  warnings: WarningRequest[];
}

/** Threshold crossings from the pump (sent with signal-with-start). */
export const accountWarningsSignal = defineSignal<[AccountWarningsPayload]>('accountWarnings');
/** The workflow's carry and counters. */
export const accountStateQuery = defineQuery<AccountCarry & { inFlight: number }>('accountState');

const NON_RETRYABLE = ['INVALID_ID', 'INVALID_INPUT', 'ACCOUNT_INVALID', 'CONFIG_INVALID', 'NOT_FOUND', 'CONFLICT', 'INVARIANT_VIOLATED'];

const INITIAL_COUNTERS: AccountCounters = { runs: 0, received: 0, deliveries: 0, finished: 0, closes: 0, finalizations: 0, woken: 0 };

/** The activities of one run: the account's (short retries) and a delivery's (the webhook's retry policy). */
function accountActivities(timings: AccountTimings) {
  const account = proxyActivities<AccountActivities>({
    startToCloseTimeout: timings.activityTimeoutMs,
    retry: {
      initialInterval: '500 milliseconds',
      backoffCoefficient: 2,
      maximumInterval: '30 seconds',
      nonRetryableErrorTypes: NON_RETRYABLE,
    },
  });
  // a separate proxy per retry policy (a proxy's activities are looked up by name: it cannot be spread)
  const delivery = proxyActivities<AccountActivities>({
    startToCloseTimeout: timings.deliveryTimeoutMs,
    retry: {
      initialInterval: timings.webhookRetryInitialMs,
      backoffCoefficient: 2,
      maximumInterval: timings.webhookRetryMaxMs,
      maximumAttempts: timings.webhookMaxAttempts,
      nonRetryableErrorTypes: NON_RETRYABLE,
    },
  });
  return { account, delivery };
}

type Activities = ReturnType<typeof accountActivities>;

/** The state of one run: what it carries over, and the deliveries it has in flight. */
interface AccountRun {
  tenant: string;
  timings: AccountTimings;
  period: { startMs: number; endMs: number } | undefined;
  closed: ClosedPeriod[];
  queue: WarningRequest[];
  counters: AccountCounters;
  /**
   * `<periodStartMs>:<limitId>:<percent>` of every warning handed to a delivery in this run (any period);
   * the open period's are carried to the next run, the others are deduped by their DynamoDB record
   * (a run hands over only once its deliveries finished, so two deliveries of one warning never overlap)
   */
  handled: Set<string>;
  inFlight: Set<Promise<void>>;
}

function startRun(input: AccountWorkflowInput): AccountRun {
  const carried = input.state;
  const period = carried?.period;
  const counters: AccountCounters = { ...INITIAL_COUNTERS, ...carried?.counters };
  counters.runs += 1;
  return {
    tenant: input.tenant,
    timings: input.timings,
    period,
    closed: [...(carried?.closed ?? [])],
    queue: [...(carried?.queue ?? [])],
    counters,
    handled: new Set<string>(period === undefined ? [] : (carried?.sent ?? []).map((key) => `${period.startMs}:${key}`)),
    inFlight: new Set<Promise<void>>(),
  };
}

/** `limitId:percent` of the open period's warnings already handed to a delivery. */
function sentInPeriod(run: AccountRun): string[] {
  if (run.period === undefined) return [];
  const prefix = `${run.period.startMs}:`;
  return [...run.handled].filter((key) => key.startsWith(prefix)).map((key) => key.slice(prefix.length));
}

/** Starts one warning's delivery; a delivery given up on is recorded failed, never sent twice. */
function deliver(run: AccountRun, activities: Activities, warning: WarningRequest): void {
  const { tenant, counters } = run;
  const request: WarningInput = { tenant, periodStartMs: warning.periodStartMs, limitId: warning.limitId, percent: warning.percent };
  counters.deliveries += 1;
  const delivery = activities.delivery.deliverWarning(request).then(
    (result) => {
      if (result.isFinishedNow) counters.finished += 1;
    },
    async (error: unknown) => {
      // retries exhausted or a non-retryable failure: never sent twice, and recorded as failed (runs
      // recorded before that step existed left the record pending)
      if (!(error instanceof ActivityFailure)) throw error;
      const failure = error.cause?.message ?? error.message;
      log.error('warning delivery given up', { tenant, limitId: warning.limitId, percent: warning.percent, cause: failure });
      if (!patched('warning-failed-record')) return;
      const { status } = await activities.account.abandonWarning({ ...request, failure });
      if (status === 'failed') counters.failed = (counters.failed ?? 0) + 1;
    },
  );
  const tracked = delivery.finally(() => run.inFlight.delete(tracked));
  run.inFlight.add(tracked);
}

/** Hands every queued warning not yet handled in this run to a delivery. */
function drainQueue(run: AccountRun, activities: Activities): void {
  for (let warning = run.queue.shift(); warning !== undefined; warning = run.queue.shift()) {
    const key = `${warning.periodStartMs}:${warning.limitId}:${warning.percent}`;
    if (run.handled.has(key)) continue;
    run.handled.add(key);
    deliver(run, activities, warning);
  }
}

/** Waits for every delivery and handler, then continues as new with the carry. */
async function handOver(run: AccountRun, activities: Activities): Promise<never> {
  drainQueue(run, activities);
  await condition(() => run.inFlight.size === 0 && allHandlersFinished());
  // signals that arrived while deliveries finished are in `queue`: carried, never lost
  const { period, closed, queue, counters } = run;
  return continueAsNew<typeof accountWorkflow>({
    tenant: run.tenant,
    timings: run.timings,
    state: { ...(period === undefined ? {} : { period }), sent: sentInPeriod(run), closed, queue: [...queue], counters },
  });
}

/** Closes the ended period (statement v1), wakes the tenant's queued jobs, and opens the next period. */
async function closeEndedPeriod(run: AccountRun, activities: Activities, ending: { startMs: number; endMs: number }): Promise<void> {
  const { tenant, counters } = run;
  const next = await activities.account.loadAccountPeriod({ tenant, atMs: ending.endMs });
  await activities.account.closePeriod({ tenant, periodStartMs: ending.startMs, periodEndMs: ending.endMs });
  counters.closes += 1;
  const wake = await activities.account.wakeWaitingJobs({ tenant });
  counters.woken += wake.woken;
  // results of activities recorded before these fields existed lack them
  if ((wake.restarted ?? 0) > 0) counters.restarted = (counters.restarted ?? 0) + wake.restarted;
  if ((wake.stranded ?? 0) > 0) {
    counters.stranded = (counters.stranded ?? 0) + wake.stranded;
    log.warn('queued jobs without a workflow could not be started again', { tenant, stranded: wake.stranded });
  }
  // the next period starts where this one ended (settings changed mid-period apply from here)
  const nextPeriod = next.period === null ? undefined : { startMs: ending.endMs, endMs: Math.max(next.period.endMs, ending.endMs + 1) };
  run.closed = [
    ...run.closed,
    { startMs: ending.startMs, endMs: ending.endMs, nextStartMs: ending.endMs, graceEndsAtMs: ending.endMs + run.timings.graceMs },
  ];
  run.period = nextPeriod;
}

/** The account workflow (see the file header). */
export async function accountWorkflow(input: AccountWorkflowInput): Promise<never> {
  const { tenant, timings } = input;
  const activities = accountActivities(timings);
  const run = startRun(input);
  const { counters } = run;

  setHandler(accountWarningsSignal, (payload) => {
    counters.received += payload.warnings.length;
    run.queue.push(...payload.warnings);
  });
  setHandler(accountStateQuery, () => ({
    ...(run.period === undefined ? {} : { period: run.period }),
    sent: sentInPeriod(run),
    closed: run.closed,
    queue: run.queue,
    counters,
    inFlight: run.inFlight.size,
  }));

  let recheckAtMs = 0;
  for (;;) {
    drainQueue(run, activities);
    const nowMs = Date.now();
    if (run.period === undefined && nowMs >= recheckAtMs) {
      const loaded = await activities.account.loadAccountPeriod({ tenant, atMs: nowMs });
      if (loaded.period === null) recheckAtMs = nowMs + timings.noAccountRecheckMs;
      else run.period = loaded.period;
      continue;
    }
    const due = run.closed.find((item) => Date.now() >= item.graceEndsAtMs);
    if (due !== undefined) {
      await activities.account.finalizePeriod({
        tenant,
        periodStartMs: due.startMs,
        periodEndMs: due.endMs,
        nextPeriodStartMs: due.nextStartMs,
      });
      counters.finalizations += 1;
      run.closed = run.closed.filter((item) => item !== due);
      continue;
    }
    if (run.period !== undefined && Date.now() >= run.period.endMs) {
      await closeEndedPeriod(run, activities, run.period);
      return handOver(run, activities);
    }
    if (workflowInfo().continueAsNewSuggested) return handOver(run, activities);
    const deadlines = [...(run.period === undefined ? [recheckAtMs] : [run.period.endMs]), ...run.closed.map((item) => item.graceEndsAtMs)];
    const waitMs = Math.max(1, Math.min(...deadlines) - Date.now());
    await condition(() => run.queue.length > 0 || workflowInfo().continueAsNewSuggested, waitMs);
  }
}
