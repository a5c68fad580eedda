import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

// Two tiers (STYLE §9). `unit` needs no service and runs in seconds
// (`npm run test:unit`); `integration` talks to the real services, which its
// globalSetup starts (or attaches to REDIS_URL / TEMPORAL_ADDRESS /
// DYNAMODB_ENDPOINT) and fails the run when one is unreachable
// (`npm run test:integration`). `vitest run` with no project runs both.
export default defineConfig({
  // Node loads graphql's CommonJS build for every dependency (yoga,
  // graphql-query-complexity); make our own imports use the same one, or
  // graphql's instanceof checks see two realms.
  resolve: { alias: [{ find: /^graphql$/, replacement: require.resolve('graphql') }] },
  test: {
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
    // global teardown (stopping the services) is a run-level setting
    teardownTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 10_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          // only this project starts the services: a unit run never waits for them
          globalSetup: ['test/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
