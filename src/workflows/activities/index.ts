export { asActivity } from './errors.js';
export * from './metering.js';
export * from './jobs.js';
export * from './audit.js';
export * from './account.js';
export * from './webhook.js';
export * from './sweep.js';
