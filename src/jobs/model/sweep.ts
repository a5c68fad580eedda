/**
 * The jobs sweep's plain data (pure: the `sweepJobs` workflow imports it): where
 * a sweep cycle continues, and what it found.
 */

/** Where a listing of one open-jobs shard continues (the index's last key). */
export interface OpenJobsCursor {
  pk: string;
  sk: string;
  openSinceMs: number;
}

/** Where the sweep of open jobs continues: an open-jobs shard and the position in it. */
export interface JobSweepPosition {
  shard: number;
  after: OpenJobsCursor | null;
}

/** What the sweep found, by job. */
export interface JobSweepCounts {
  /** Unfinished jobs older than the grace it listed. */
  checked: number;
  /** Their workflow runs: nothing to do. */
  running: number;
  /** Started again from their record (see restartDeferredJob). */
  restarted: number;
  /** Past their TTL with nothing to restart them from: finished (queued: expired, uncharged; running: failed, JOB_LOST). */
  ended: number;
  /** Finished meanwhile (the index lags the table). */
  finished: number;
  /** Cannot be restarted (no kept submission, TTL not reached yet), or whose workflow completed without finishing the record. */
  stranded: number;
}

export const EMPTY_JOB_SWEEP_COUNTS: JobSweepCounts = { checked: 0, running: 0, restarted: 0, ended: 0, finished: 0, stranded: 0 };

/** The sum of two counts. */
export function addJobSweepCounts(a: JobSweepCounts, b: JobSweepCounts): JobSweepCounts {
  return {
    checked: a.checked + b.checked,
    running: a.running + b.running,
    restarted: a.restarted + b.restarted,
    ended: a.ended + b.ended,
    finished: a.finished + b.finished,
    stranded: a.stranded + b.stranded,
  };
}
