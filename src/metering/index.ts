export * from './dynamo.js';
export * from './ledger.js';
export * from './model/usage-event.js';
export * from './model/ledger-batch.js';
export * from './keys.js';
export * from './pump.js';
export * from './model/audit.js';
export * from './audit.js';
