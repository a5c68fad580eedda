export * from './meter-shard.js';
export * from './run-deferred-job.js';
export * from './audit-ledger.js';
export * from './account.js';
export * from './sweep-jobs.js';
