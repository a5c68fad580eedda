export { asActivity } from './errors.js';
export {
  createMeteringActivities,
  type MeteringActivities,
  type MeteringActivityDeps,
  type PumpBatchCounts,
  type PumpUsageBatchInput,
  type PumpUsageBatchResult,
  type PumpUsageShardsInput,
  type PumpUsageShardsResult,
} from './metering.js';
export {
  createJobActivities,
  type AdmitJobInput,
  type ExecuteJobInput,
  type ExecuteJobResult,
  type FinishJobInput,
  type JobActivities,
  type JobActivityDeps,
  type JobAdmission,
  type JobRef,
  type SettleJobInput,
} from './jobs.js';
export {
  createAuditActivities,
  type AuditActivities,
  type AuditActivityDeps,
  type AuditPageActivityResult,
  type AuditPageInput,
  type StoreAuditReportInput,
} from './audit.js';
export {
  createAccountActivities,
  RESTART_GRACE_MS,
  warningIdempotencyKey,
  type AccountActivities,
  type AccountActivityDeps,
  type ClosePeriodInput,
  type DeliverWarningResult,
  type FinalizePeriodInput,
  type LoadAccountPeriodInput,
  type LoadAccountPeriodResult,
  type StatementSummary,
  type WakeResult,
  type WarningInput,
} from './account.js';
export { postSignedWebhook, signWebhook } from './webhook.js';
export {
  createJobSweepActivities,
  type JobSweepActivities,
  type JobSweepActivityDeps,
  type JobSweepPageInput,
  type JobSweepPageResult,
} from './sweep.js';
