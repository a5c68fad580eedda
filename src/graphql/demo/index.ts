/**
 * The demo API that `npm start` serves: its data, schema, plans and keys, and
 * what the API process seeds for it at start. Not part of the library's
 * public surface (`src/graphql/index.ts`): the API process, the benchmarks
 * and the tests import it from here.
 */
export { DemoStore } from './data.js';
export { createDemoSchema, type DemoSchemaDeps } from './schema.js';
export { DEMO_ANONYMOUS, createDemoSetup, seedDemoConfig, type DemoKey, type DemoSetup } from './seed.js';
export { seedDemoKeys, setUpDemoAccounts, type SeedDemoKeysOptions, type SetUpDemoAccountsOptions } from './startup.js';
export { demoSurface } from './surface.js';
