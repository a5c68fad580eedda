/**
 * sweepJobs (`jobs-sweep/<scope>`): the sweep of unfinished deferred jobs,
 * forever. A cycle walks the open-jobs index of every tenant, shard by shard,
 * one page per activity (`sweepOpenJobsPage`: bounded work). A job whose
 * workflow is gone is started again from its record, one past its TTL that
 * cannot be is ended, so no job is stranded and no place in a tenant's queue is
 * lost between period closes, or for tenants without an account workflow. The
 * workflow then waits `intervalMs` on a durable timer. It keeps only the
 * position and the cycle's counts, and continues as new every `pagesPerRun`
 * pages or when Temporal suggests it. New settings arrive by
 * `jobSweepSettingsSignal` and apply from the next run.
 */
import { continueAsNew, defineQuery, defineSignal, proxyActivities, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import type { JobSweepActivities } from '../activities/index.js';
import { EMPTY_JOB_SWEEP_COUNTS, addJobSweepCounts, type JobSweepCounts, type JobSweepPosition } from '../../jobs/model/sweep.js';

/** Timing and sizing of the sweep; from configuration (`JOBS_SWEEP_*`). */
export interface JobSweepSettings {
  /** Wait between the end of a cycle and the start of the next, ms. */
  intervalMs: number;
  /** Jobs younger than this (ms) are not looked at: their submit may still be starting their workflow. */
  graceMs: number;
  /** Jobs per page (one page is one activity). */
  pageSize: number;
  /** Pages per run before continue-as-new. */
  pagesPerRun: number;
  /** Start-to-close timeout of one page, ms. */
  activityTimeoutMs: number;
}

export interface JobSweepState {
  /** Cycles completed since the workflow first started. */
  completedCycles: number;
  /** Where the cycle in progress continues. */
  position: JobSweepPosition;
  /** What the cycle in progress found so far. */
  counts: JobSweepCounts;
  /** What the last completed cycle found (undefined before the first). */
  last?: JobSweepCounts;
}

export interface SweepJobsInput {
  scope: string;
  settings: JobSweepSettings;
  /** Carried over by continue-as-new; absent on the first start. */
  state?: JobSweepState;
}

export const jobSweepStateQuery = defineQuery<JobSweepState>('jobSweepState');
export const jobSweepSettingsSignal = defineSignal<[JobSweepSettings]>('jobSweepSettings');

const FIRST_POSITION: JobSweepPosition = { shard: 0, after: null };

function isSameSettings(a: JobSweepSettings, b: JobSweepSettings): boolean {
  return (
    a.intervalMs === b.intervalMs &&
    a.graceMs === b.graceMs &&
    a.pageSize === b.pageSize &&
    a.pagesPerRun === b.pagesPerRun &&
    a.activityTimeoutMs === b.activityTimeoutMs
  );
}

/** Sweeps the unfinished deferred jobs, cycle after cycle. */
export async function sweepJobs(input: SweepJobsInput): Promise<never> {
  const { settings } = input;
  const { sweepOpenJobsPage } = proxyActivities<JobSweepActivities>({
    startToCloseTimeout: settings.activityTimeoutMs,
    heartbeatTimeout: Math.min(settings.activityTimeoutMs, 60_000),
    retry: {
      initialInterval: '1 second',
      backoffCoefficient: 2,
      maximumInterval: '1 minute',
      nonRetryableErrorTypes: ['INVALID_ID', 'INVALID_INPUT', 'INVARIANT_VIOLATED'],
    },
  });
  let state: JobSweepState = input.state ?? { completedCycles: 0, position: FIRST_POSITION, counts: EMPTY_JOB_SWEEP_COUNTS };
  let nextSettings: JobSweepSettings | undefined;
  setHandler(jobSweepStateQuery, () => state);
  setHandler(jobSweepSettingsSignal, (update) => {
    nextSettings = isSameSettings(update, settings) ? undefined : update;
  });
  for (let page = 0; page < settings.pagesPerRun; page += 1) {
    const result = await sweepOpenJobsPage({ position: state.position, graceMs: settings.graceMs, pageSize: settings.pageSize });
    const counts = addJobSweepCounts(state.counts, result.counts);
    if (result.next !== null) {
      state = { ...state, position: result.next, counts };
    } else {
      state = { completedCycles: state.completedCycles + 1, position: FIRST_POSITION, counts: EMPTY_JOB_SWEEP_COUNTS, last: counts };
      await sleep(settings.intervalMs);
    }
    if (nextSettings !== undefined || workflowInfo().continueAsNewSuggested) break;
  }
  return continueAsNew<typeof sweepJobs>({ scope: input.scope, settings: nextSettings ?? settings, state });
}
