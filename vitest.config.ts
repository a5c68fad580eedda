import { defineConfig } from 'vitest/config';

// Unit and integration tests in one run. The globalSetup starts the real
// services (or attaches to REDIS_URL / TEMPORAL_ADDRESS / DYNAMODB_ENDPOINT)
// and fails the run when one is unreachable.
export default defineConfig({
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
