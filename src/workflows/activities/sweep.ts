/**
 * The activity of the `jobs-sweep/<scope>` workflow: one page of the sweep of
 * unfinished deferred jobs (`sweepOpenJobs`). The sweep itself is passed in
 * (it needs the Temporal client and the job store the worker holds); every
 * step of it is idempotent, so the activity is safe to retry.
 */
import { heartbeat } from '@temporalio/activity';
import type { Logger } from '../../shared/index.js';
import type { JobSweepCounts, JobSweepPosition } from '../../jobs/index.js';
import { asActivity } from './errors.js';

export interface JobSweepPageInput {
  position: JobSweepPosition;
  /** Jobs younger than this (ms) are left alone: their submit may still be starting them. */
  graceMs: number;
  pageSize: number;
}

export interface JobSweepPageResult {
  counts: JobSweepCounts;
  next: JobSweepPosition | null;
}

export interface JobSweepActivityDeps {
  sweepPage: (input: JobSweepPageInput & { onJob: () => void }) => Promise<JobSweepPageResult>;
  logger: Logger;
  /** Called with each page's counts (metrics). */
  onPage?: (counts: JobSweepCounts) => void;
}

/** Activities of the jobs sweep. */
export function createJobSweepActivities(deps: JobSweepActivityDeps) {
  return {
    /** Sweeps one page of one open-jobs shard; returns its counts and where the cycle continues. */
    async sweepOpenJobsPage(input: JobSweepPageInput): Promise<JobSweepPageResult> {
      return asActivity(async () => {
        let done = 0;
        heartbeat(done);
        const result = await deps.sweepPage({ ...input, onJob: () => heartbeat((done += 1)) });
        deps.onPage?.(result.counts);
        const { counts } = result;
        if (counts.restarted > 0 || counts.ended > 0 || counts.stranded > 0) {
          deps.logger.warn(
            {
              code: 'JOBS_SWEPT',
              shard: input.position.shard,
              restarted: counts.restarted,
              ended: counts.ended,
              stranded: counts.stranded,
            },
            'jobs sweep found unfinished jobs without a running workflow',
          );
        }
        return result;
      });
    },
  };
}

export type JobSweepActivities = ReturnType<typeof createJobSweepActivities>;
