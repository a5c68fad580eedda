export * from './post-ledger-entries.js';
export * from './run-deferred-job.js';
