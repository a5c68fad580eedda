import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

// Unit and integration tests in one run. The globalSetup starts the real
// services (or attaches to REDIS_URL / TEMPORAL_ADDRESS / DYNAMODB_ENDPOINT)
// and fails the run when one is unreachable.
export default defineConfig({
  // Node loads graphql's CommonJS build for every dependency (yoga,
  // graphql-query-complexity); make our own imports use the same one, or
  // graphql's instanceof checks see two realms.
  resolve: { alias: [{ find: /^graphql$/, replacement: require.resolve('graphql') }] },
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 180_000,
    teardownTimeout: 60_000,
    reporters: ['default'],
  },
});
