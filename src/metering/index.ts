export * from './dynamo.js';
export * from './ledger.js';
