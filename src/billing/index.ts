/** Billing: tenant accounts, pricing, statements and the period records of warnings. */
export {
  DynamoAccountStore,
  accountProblems,
  accountView,
  validateAccount,
  type AccountSettings,
  type AccountStore,
  type AccountView,
} from './accounts.js';
export {
  DynamoPeriodStore,
  type FinishedWarningStatus,
  type PeriodUsage,
  type Statement,
  type WarningRecord,
  type WarningRef,
  type WarningStatus,
} from './periods.js';
export { priceProblems, priceUsage, type PriceBreakdown, type PriceSpec, type PricedTier, type PriceTier } from './model/pricing.js';
export { applyCorrection, type CorrectionDeps, type CorrectionInput, type CorrectionResult } from './corrections.js';
export { DynamoWarningReader, type WarningSent } from './period-warnings.js';
export {
  replayUsage,
  type RecordedEntry,
  type ReplayDay,
  type ReplayInput,
  type ReplayKind,
  type ReplayResult,
  type ReplayedRequest,
} from './replay.js';
