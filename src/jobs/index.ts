/** Deferred (202) jobs: the record and its store, the ports, deferring an operation, the pure sweep model and the status view. */
export {
  FINISHED_JOB_STATUSES,
  MAX_RESULT_CHARS,
  MAX_SUBMISSION_CHARS,
  OPEN_JOBS_INDEX,
  OPEN_JOB_SHARDS,
  isJobId,
  jobsTableName,
  openJobShard,
  parseJobId,
  type CreateJobInput,
  type JobRecord,
  type JobStatus,
  type JobSubmission,
  type OpenJob,
  type QueuedJob,
  type RestartOutcome,
} from './record.js';
export { DynamoJobStore } from './store.js';
export type {
  DeferInput,
  DeferredJob,
  Deferrer,
  JobError,
  JobExecution,
  JobExecutionInput,
  JobExecutor,
  JobPolicy,
  JobReader,
} from './ports.js';
export { InMemoryDeferrer, deferredJobId } from './deferrer.js';
export { DeferralLane, type DeferralLaneOptions, type DeferralLaneState } from './deferral-lane.js';
export {
  deferOperation,
  deferSubmission,
  findRetriedJob,
  type DeferFailureCode,
  type DeferOutcome,
  type DeferSubmission,
  type DeferSubmissionInput,
  type RetriedJobLookup,
} from './deferral.js';
export { jobRecordTtlMs, type JobSettings } from './settings.js';
export { jobView, readJob, type JobView } from './view.js';
export { FinishedJobCache, type FinishedJobCacheOptions } from './finished-cache.js';
export {
  EMPTY_JOB_SWEEP_COUNTS,
  addJobSweepCounts,
  type JobSweepCounts,
  type JobSweepPosition,
  type OpenJobsCursor,
} from './model/sweep.js';
