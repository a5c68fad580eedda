/**
 * What the globalSetup hands to test files, and helpers built on it.
 */
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { loadConfig, type AppConfig } from '../../src/shared/index.js';

export interface TestStack {
  redisUrl: string;
  redisClusterNodes: { host: string; port: number }[];
  temporalAddress: string;
  temporalNamespace: string;
  dynamodbEndpoint: string;
  dynamodbRegion: string;
  tablePrefix: string;
  dataDir: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    stack: TestStack;
  }
}

/** The running test stack. */
export function testStack(): TestStack {
  return inject('stack');
}

/** The environment variables that point a tollgate process at the test stack. */
export function stackEnv(): Record<string, string> {
  const stack = testStack();
  return {
    REDIS_URL: stack.redisUrl,
    TEMPORAL_ADDRESS: stack.temporalAddress,
    TEMPORAL_NAMESPACE: stack.temporalNamespace,
    DYNAMODB_ENDPOINT: stack.dynamodbEndpoint,
    DYNAMODB_REGION: stack.dynamodbRegion,
    DYNAMODB_TABLE_PREFIX: stack.tablePrefix,
  };
}

/** App config pointing at the test stack (as an entry point would load it). */
export function testConfig(overrides: Record<string, string> = {}): AppConfig {
  return loadConfig({ ...stackEnv(), LOG_LEVEL: 'silent', ...overrides });
}

/** A fresh tenant id per test: tests isolate by their own ids, never by flushing. */
export function uniqueTenant(prefix = 't'): string {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}
