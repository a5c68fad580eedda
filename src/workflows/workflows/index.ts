export {
  meterSettingsQuery,
  meterSettingsSignal,
  meterShard,
  meterStateQuery,
  type MeterCounters,
  type MeterSettings,
  type MeterShardInput,
  type MeterState,
} from './meter-shard.js';
export { meterPump, meterPumpStateQuery, type MeterPumpInput } from './meter-pump.js';
export { nextWaitMs, runDeferredJob, wakeSignal, type DeferredJobInput, type DeferredJobResult } from './run-deferred-job.js';
export {
  auditLedger,
  auditSettingsSignal,
  auditStateQuery,
  type AuditCycleState,
  type AuditLedgerInput,
  type AuditSettings,
} from './audit-ledger.js';
export {
  accountStateQuery,
  accountWarningsSignal,
  accountWorkflow,
  type AccountCarry,
  type AccountCounters,
  type AccountTimings,
  type AccountWarningsPayload,
  type AccountWorkflowInput,
  type ClosedPeriod,
  type WarningRequest,
} from './account.js';
export {
  jobSweepSettingsSignal,
  jobSweepStateQuery,
  sweepJobs,
  type JobSweepSettings,
  type JobSweepState,
  type SweepJobsInput,
} from './sweep-jobs.js';
