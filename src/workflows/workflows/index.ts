export * from './post-ledger-entries.js';
