/** Metering: usage events from the decider's streams into the DynamoDB ledger, exactly once, and the audit. */
export { batchGetConsistent, configTableName, createDynamoClient, ledgerTableName, type DynamoConnectionOptions } from './dynamo.js';
export { DynamoLedgerStore, type DynamoLedgerStoreOptions } from './ledger.js';
export {
  MAX_TRANSACT_ITEMS,
  type LedgerBalance,
  type LedgerConflict,
  type LedgerEntry,
  type LedgerStore,
  type PostEntriesOptions,
  type PostEntriesResult,
  type PostEntryResult,
} from './ledger-items.js';
export { correctionTextProblem, parseUsageEvent, type ParsedUsageEvent, type UsageEvent } from './model/usage-event.js';
export { planLedgerTransactions, runWithoutSharedBalances } from './model/ledger-batch.js';
export { deadLetterStreamKey, parseShard } from './keys.js';
export {
  UsagePump,
  type CrossedThreshold,
  type PumpBatchInput,
  type PumpBatchResult,
  type PumpStage,
  type UsagePumpOptions,
  type WarningSink,
} from './pump.js';
export {
  EMPTY_AUDIT_SUMMARY,
  SAMPLE_LIMIT,
  addToSummary,
  inFlightOf,
  ledgeredFor,
  mergeSummaries,
  tenantPeriodAudit,
  unacknowledged,
  type AuditSummary,
  type InFlightEvent,
  type TenantPeriodAudit,
} from './model/audit.js';
export { MeteringAuditor, type AuditOutcome, type AuditPageResult, type AuditScanPosition, type MeteringAuditorOptions } from './audit.js';
export { DynamoAuditStore, type AuditReport } from './audit-store.js';
export { readStreamLag, type ReadStreamLagInput, type StreamLag } from './lag.js';
export { DynamoUsageReader, monthsBetween, type HourRollup, type ReceiptEntry } from './usage-reader.js';
