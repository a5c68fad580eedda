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

/** Physical name of the config table (accounts, plans, keys); must agree with infra/tables.ts. */
export function configTableName(prefix: string): string {
  return `${prefix}config`;
}
