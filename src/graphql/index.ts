export * from './app.js';
export * from './readiness.js';
export * from './schema.js';
