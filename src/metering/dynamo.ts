/**
 * DynamoDB clients. A loopback endpoint (DynamoDB Local) gets fixed dummy
 * credentials, since it accepts any; every other endpoint uses the AWS SDK's
 * default credential chain.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';

export interface DynamoConnectionOptions {
  endpoint: string | undefined;
  region: string;
  /** SDK attempts per call, including the first. @default 3 */
  maxAttempts?: number;
  /**
   * Longest time one HTTP request may take, ms; past it the attempt fails with a TimeoutError and
   * the SDK retries it. Without it a request whose response never comes hangs its caller (seen
   * with DynamoDB Local under a storm: an activity stuck until its start-to-close timeout). @default 10000
   */
  requestTimeoutMs?: number;
}

function isLoopback(endpoint: string): boolean {
  const host = new URL(endpoint).hostname;
  return host === 'localhost' || host === '[::1]' || host.startsWith('127.');
}

/** Opens a DynamoDB client for the configured endpoint and region. */
export function createDynamoClient(options: DynamoConnectionOptions): DynamoDBClient {
  return new DynamoDBClient({
    region: options.region,
    maxAttempts: options.maxAttempts ?? 3,
    requestHandler: { connectionTimeout: 3_000, requestTimeout: options.requestTimeoutMs ?? 10_000, throwOnRequestTimeout: true },
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    ...(options.endpoint !== undefined && isLoopback(options.endpoint)
      ? { credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }
      : {}),
  });
}

/** Physical table names for a prefix; must agree with infra/tables.ts. */
export function ledgerTableName(prefix: string): string {
  return `${prefix}ledger`;
}

/** Physical name of the config table (accounts, plans, keys, operational records such as the latest audit report); must agree with infra/tables.ts. */
export function configTableName(prefix: string): string {
  return `${prefix}config`;
}
