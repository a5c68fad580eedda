/**
 * Activities of the `account/<tenant>` workflow. Each is idempotent under its
 * business key:
 * - `deliverWarning`: the record `warning#<limitId>#<percent>` of the period is
 *   created (pending) before any POST and finished once (delivered/skipped); a
 *   retry of a delivered warning sends nothing. Between a POST the receiver took
 *   and the record's update (a crash), the retry POSTs again with the same
 *   `Idempotency-Key`: receivers dedupe on it (documented webhook contract).
 * - `closePeriod` / `finalizePeriod`: statements are versioned (1 at the close,
 *   2 final) and never rewritten at the same version; finalization is set once.
 * - `abandonWarning`: pending → failed once, when the workflow gave up on a
 *   delivery; a warning already delivered or skipped keeps its status.
 * - `wakeWaitingJobs`: a wake signal is harmless to a job that is not waiting;
 *   a restart of a job whose workflow is gone is a start with the job's own id
 *   and policies (a running one is joined, a completed one never runs again).
 *
 * The webhook secret is read here from the account store, never passed through
 * workflow inputs or histories, and never logged.
 */
import { heartbeat } from '@temporalio/activity';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { periodAt, type Period } from '../../decider/index.js';
import type { AccountStore, DynamoPeriodStore, WarningStatus } from '../../billing/index.js';
import { ValidationError, parseLimitId, parseTenantId, systemClock, type Clock } from '../../shared/index.js';
import { jobWorkflowId } from '../ids.js';
import type { DynamoJobStore, RestartOutcome } from '../../jobs/index.js';
import { asActivity } from './errors.js';
import { postSignedWebhook } from './webhook.js';

export interface AccountActivityDeps {
  accounts: AccountStore;
  periods: DynamoPeriodStore;
  jobs: DynamoJobStore;
  /** Signals the tenant's waiting jobs. */
  client: Client;
  /** Timeout of one webhook POST, ms. */
  webhookTimeoutMs: number;
  /** @default systemClock */
  clock?: Clock;
  /** Called after the webhook accepted a warning, before its record says delivered (tests inject crashes here). */
  onWebhookAccepted?: (idempotencyKey: string) => void;
  /** Most queued jobs one wake signals, oldest first; the rest wait for their own retry timer. @default 1000 */
  wakeMaxJobs?: number;
  /**
   * Starts the workflow of a queued job that has none from its record (`restartDeferredJob`); without it such
   * jobs are only counted as stranded.
   */
  restartJob?: (input: { tenant: string; jobId: string }) => Promise<RestartOutcome>;
}

/** A queued job younger than this may have its workflow start still in flight: never restarted. */
export const RESTART_GRACE_MS = 60_000;

export interface WakeResult {
  /** Jobs signalled. */
  woken: number;
  /** Queued jobs whose workflow was gone and was started again from their record. */
  restarted: number;
  /** Queued jobs whose workflow was gone and could not be started again (no kept submission, or a completed run). */
  stranded: number;
  /** Queued jobs left to their own retry timers (over `wakeMaxJobs`). */
  skipped: number;
}

export interface LoadAccountPeriodInput {
  tenant: string;
  /** The instant whose period is wanted, epoch ms. */
  atMs: number;
}

export interface LoadAccountPeriodResult {
  /** False when the tenant has no stored settings (no period clock; warnings are recorded as skipped). */
  hasAccount: boolean;
  /** The billing period containing `atMs`, by the account's anchor and zone. */
  period: Period | null;
}

export interface WarningInput {
  tenant: string;
  /** Start of the period the threshold was crossed in, epoch ms. */
  periodStartMs: number;
  limitId: string;
  percent: number;
}

export interface DeliverWarningResult {
  status: WarningStatus;
  /** True when this call moved the record from pending (a POST accepted now, or skipped now). */
  isFinishedNow: boolean;
}

export interface ClosePeriodInput {
  tenant: string;
  periodStartMs: number;
  periodEndMs: number;
}

export interface FinalizePeriodInput extends ClosePeriodInput {
  /** Where events of this period go once it is finalized. */
  nextPeriodStartMs: number;
}

export interface StatementSummary {
  version: number;
  isFinal: boolean;
  units: number;
  entries: number;
  lateUnits: number;
  totalMicros: number;
  currency: string;
  /** False when the statement was already there (a replay): nothing changed. */
  isWritten: boolean;
}

/** The Idempotency-Key of a warning: the same on every attempt, unique per tenant, period, limit and percent. */
export function warningIdempotencyKey(input: WarningInput): string {
  return `warning-${input.tenant}-${input.periodStartMs}-${input.limitId}-${input.percent}`;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** Wake signals in flight at once. */
const WAKE_CONCURRENCY = 16;

function parseWarning(input: WarningInput): {
  tenant: ReturnType<typeof parseTenantId>;
  periodStart: string;
  limitId: string;
  percent: number;
} {
  if (!Number.isSafeInteger(input.periodStartMs) || input.periodStartMs < 0)
    throw new ValidationError('INVALID_INPUT', 'periodStartMs must be epoch ms');
  if (!Number.isInteger(input.percent) || input.percent < 1 || input.percent > 1000)
    throw new ValidationError('INVALID_INPUT', 'percent must be 1..1000');
  return {
    tenant: parseTenantId(input.tenant),
    periodStart: iso(input.periodStartMs),
    limitId: parseLimitId(input.limitId),
    percent: input.percent,
  };
}

function parsePeriod(input: ClosePeriodInput): void {
  if (!Number.isSafeInteger(input.periodStartMs) || !Number.isSafeInteger(input.periodEndMs) || input.periodEndMs <= input.periodStartMs) {
    throw new ValidationError('INVALID_INPUT', 'a period is [periodStartMs, periodEndMs) with start < end');
  }
}

/** Activities of the `account/<tenant>` workflow. */
export function createAccountActivities(deps: AccountActivityDeps) {
  return { ...createPeriodActivities(deps), ...createWarningActivities(deps), ...createWakeActivities(deps) };
}

/** The period: which one an instant is in, its close (statement v1) and its finalization (v2). */
function createPeriodActivities(deps: AccountActivityDeps) {
  const clock = deps.clock ?? systemClock;

  async function summarize(input: ClosePeriodInput & { version: number; isFinal: boolean }): Promise<StatementSummary> {
    const tenant = parseTenantId(input.tenant);
    const account = await deps.accounts.get(tenant);
    if (account === undefined)
      throw new ValidationError('ACCOUNT_INVALID', `tenant ${tenant} has no account settings to price its statement`);
    const { statement, isWritten } = await deps.periods.writeStatement({
      tenant,
      periodStart: iso(input.periodStartMs),
      periodEnd: iso(input.periodEndMs),
      version: input.version,
      isFinal: input.isFinal,
      price: account.price,
      nowMs: clock.nowMs(),
    });
    return {
      version: statement.version,
      isFinal: statement.isFinal,
      units: statement.usage.units,
      entries: statement.usage.entries,
      lateUnits: statement.usage.lateUnits,
      totalMicros: statement.price.totalMicros,
      currency: statement.price.currency,
      isWritten,
    };
  }

  return {
    /** The account's billing period containing an instant (its settings may change between periods). */
    async loadAccountPeriod(input: LoadAccountPeriodInput): Promise<LoadAccountPeriodResult> {
      return asActivity(async () => {
        const account = await deps.accounts.get(parseTenantId(input.tenant));
        if (account === undefined) return { hasAccount: false, period: null };
        return { hasAccount: true, period: periodAt(account.billingPeriod, input.atMs) };
      });
    },

    /** Writes statement version 1 at the period end (a replay returns the one there). */
    async closePeriod(input: ClosePeriodInput): Promise<StatementSummary> {
      return asActivity(async () => {
        parsePeriod(input);
        return summarize({ ...input, version: 1, isFinal: false });
      });
    },

    /**
     * At the end of the grace window: finalizes the period (later events go to
     * the next one), then re-rates it as the final statement (version 2).
     * Finalizing first makes the final statement exact: nothing enters the
     * partition after it.
     */
    async finalizePeriod(input: FinalizePeriodInput): Promise<StatementSummary & { finalizedAtMs: number }> {
      return asActivity(async () => {
        parsePeriod(input);
        const tenant = parseTenantId(input.tenant);
        const { finalizedAtMs } = await deps.periods.finalize({
          tenant,
          periodStart: iso(input.periodStartMs),
          nextPeriodStart: iso(input.nextPeriodStartMs),
          nowMs: clock.nowMs(),
        });
        return { ...(await summarize({ ...input, version: 2, isFinal: true })), finalizedAtMs };
      });
    },
  };
}

/** Threshold warnings: delivered at most once per period, or recorded as given up. */
function createWarningActivities(deps: AccountActivityDeps) {
  const clock = deps.clock ?? systemClock;
  return {
    /**
     * Sends one threshold warning at most once per period (see the file header).
     * @throws DependencyError `DEPENDENCY_FAILED` when the webhook answers non-2xx or times out (retried)
     */
    async deliverWarning(input: WarningInput): Promise<DeliverWarningResult> {
      return asActivity(async () => {
        const warning = parseWarning(input);
        const idempotencyKey = warningIdempotencyKey(input);
        const ref = { tenant: warning.tenant, periodStart: warning.periodStart, limitId: warning.limitId, percent: warning.percent };
        const record = await deps.periods.beginWarning({ ...ref, idempotencyKey, nowMs: clock.nowMs() });
        if (record.status !== 'pending') return { status: record.status, isFinishedNow: false };
        const account = await deps.accounts.get(warning.tenant);
        if (account?.webhookUrl === undefined || account.webhookSecret === undefined) {
          const skipped = await deps.periods.finishWarning({ ...ref, status: 'skipped', nowMs: clock.nowMs() });
          return { status: skipped.status, isFinishedNow: skipped.status === 'skipped' };
        }
        const body = JSON.stringify({
          type: 'quota.threshold-crossed.v1',
          id: idempotencyKey,
          tenant: warning.tenant,
          periodStart: warning.periodStart,
          limitId: warning.limitId,
          percent: warning.percent,
        });
        await postSignedWebhook({
          url: account.webhookUrl,
          secret: account.webhookSecret,
          idempotencyKey,
          body,
          timeoutMs: deps.webhookTimeoutMs,
          clock,
          what: `warning webhook of ${warning.tenant}`,
        });
        deps.onWebhookAccepted?.(idempotencyKey);
        const delivered = await deps.periods.finishWarning({ ...ref, status: 'delivered', nowMs: clock.nowMs() });
        return { status: delivered.status, isFinishedNow: delivered.status === 'delivered' };
      });
    },

    /**
     * Records a warning the workflow gave up on (its delivery's retries ran out, or it failed for good):
     * pending → failed with the reason, so an operator sees it and no later run sends it.
     * @returns the record's status after the call (delivered/skipped when it had finished after all)
     */
    async abandonWarning(input: WarningInput & { failure: string }): Promise<{ status: WarningStatus }> {
      return asActivity(async () => {
        const warning = parseWarning(input);
        const ref = { tenant: warning.tenant, periodStart: warning.periodStart, limitId: warning.limitId, percent: warning.percent };
        const existing = await deps.periods.getWarning(ref);
        // never recorded (its first attempt failed before the record was written): record it as failed now
        if (existing === undefined)
          await deps.periods.beginWarning({ ...ref, idempotencyKey: warningIdempotencyKey(input), nowMs: clock.nowMs() });
        const record = await deps.periods.finishWarning({ ...ref, status: 'failed', failure: input.failure, nowMs: clock.nowMs() });
        return { status: record.status };
      });
    },
  };
}

/** Waking a tenant's queued deferred jobs when a period quota resets. */
function createWakeActivities(deps: AccountActivityDeps) {
  const clock = deps.clock ?? systemClock;
  return {
    /**
     * Signals `wake` to the tenant's queued deferred jobs (a period quota was reset), oldest first and at most
     * `wakeMaxJobs`: the oldest get the fresh quota first, and a close costs at most that many signals and
     * admission attempts. A queued job whose workflow is gone (recorded while Temporal was unreachable, its
     * client never retried; or terminated) is started again from its record when it is older than a minute.
     */
    async wakeWaitingJobs(input: { tenant: string }): Promise<WakeResult> {
      return asActivity(async () => {
        const tenant = parseTenantId(input.tenant);
        const queued = await deps.jobs.listQueued(tenant);
        const limit = deps.wakeMaxJobs ?? 1_000;
        const chosen = queued.slice(0, limit);
        const result: WakeResult = { woken: 0, restarted: 0, stranded: 0, skipped: queued.length - chosen.length };
        const nowMs = clock.nowMs();
        let done = 0;
        // a few signals in flight at once, taken in order (oldest first)
        const lanes = Array.from({ length: Math.min(WAKE_CONCURRENCY, chosen.length) }, async () => {
          for (let job = chosen.shift(); job !== undefined; job = chosen.shift()) {
            try {
              await deps.client.workflow.getHandle(jobWorkflowId({ tenant, jobId: job.jobId })).signal('wake');
              result.woken += 1;
            } catch (error) {
              if (!(error instanceof WorkflowNotFoundError)) throw error;
              if (nowMs - job.createdAtMs >= RESTART_GRACE_MS) {
                const outcome = deps.restartJob === undefined ? 'no-submission' : await deps.restartJob({ tenant, jobId: job.jobId });
                if (outcome === 'started') result.restarted += 1;
                else if (outcome === 'no-submission' || outcome === 'completed') result.stranded += 1;
              }
            }
            done += 1;
            if (done % 50 === 0) heartbeat(done);
          }
        });
        await Promise.all(lanes);
        return result;
      });
    },
  };
}

export type AccountActivities = ReturnType<typeof createAccountActivities>;
