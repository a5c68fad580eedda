export * from './post-ledger-entries.js';
export * from './meter-shard.js';
