export * from './client.js';
export * from './ids.js';
// deferred (202) jobs
export * from './job-store.js';
export * from './jobs.js';
export type { JobExecutor, JobExecution, JobExecutionInput, JobError, JobPolicy } from './activities/index.js';
export type { DeferredJobInput, DeferredJobResult } from './workflows/index.js';
export * from './metrics.js';
export type { AuditSettings, AuditCycleState } from './workflows/index.js';
export { auditStateQuery, jobSweepStateQuery } from './workflows/index.js';
export type { JobSweepSettings, JobSweepState } from './workflows/index.js';
export * from './model/sweep.js';
export { accountTimings, startAccountWorkflows } from './worker.js';
export type { AccountTimings, WarningRequest } from './workflows/index.js';
