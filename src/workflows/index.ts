/** Temporal wiring: starts of the fleet's workflows, deferred jobs on Temporal, worker assembly and settings. */
export {
  TemporalWarningSink,
  ensureAccountWorkflow,
  ensureAuditWorkflow,
  ensureJobSweepWorkflow,
  ensureMeterWorkflows,
  type EnsureAccountWorkflowInput,
  type EnsureAuditWorkflowInput,
  type EnsureJobSweepWorkflowInput,
  type EnsureMeterWorkflowsInput,
} from './client.js';
export {
  accountWorkflowId,
  auditWorkflowId,
  jobSweepWorkflowId,
  jobWorkflowId,
  meterPumpGroups,
  meterPumpId,
  meterWorkflowId,
  shardsOfMeterId,
} from './ids.js';
export {
  isDeferredJobRunning,
  restartDeferredJob,
  submitDeferredJob,
  sweepOpenJobs,
  wakeDeferredJob,
  type SubmitJobInput,
} from './jobs.js';
export { TemporalDeferrer, type TemporalDeferrerOptions } from './temporal-deferrer.js';
export { routeTemporalLogs } from './temporal-logging.js';
export { WorkerMetrics, isFleetStalled, serveWorkerMetrics, type FleetHealth, type Readiness } from './metrics.js';
export { accountTimings, auditSettings, jobSweepSettings, meterSettings } from './settings.js';
export {
  createJobsWorker,
  createTollgateWorker,
  startAccountWorkflows,
  startMeterPumps,
  workflowsPath,
  type JobsWorkerInput,
  type TollgateWorkerInput,
} from './workers.js';
export { auditStateQuery, jobSweepStateQuery } from './workflows/index.js';
export type {
  AccountTimings,
  AuditCycleState,
  AuditSettings,
  DeferredJobInput,
  DeferredJobResult,
  JobSweepSettings,
  JobSweepState,
  MeterSettings,
  WarningRequest,
} from './workflows/index.js';
