/**
 * DynamoDB clients. A loopback endpoint (DynamoDB Local) gets fixed dummy
 * credentials, since it accepts any; every other endpoint uses the AWS SDK's
 * default credential chain.
 */
import { BatchGetItemCommand, DynamoDBClient, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { DependencyError } from '../shared/index.js';

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

/** BatchGetItem takes at most this many keys per call. */
const BATCH_GET_KEYS = 100;
/** Rounds of unprocessed keys retried before giving up. */
const BATCH_GET_ROUNDS = 10;

/**
 * Reads `keys` of `table` consistently, 100 keys a call, retrying the keys DynamoDB leaves unprocessed (at most 10
 * rounds per call). Items come back in no particular order; missing keys are simply absent.
 * @throws DependencyError `DYNAMODB_UNAVAILABLE` (`what` names the read) when DynamoDB fails or keeps keys unprocessed
 */
export async function batchGetConsistent(
  client: DynamoDBClient,
  table: string,
  keys: Record<string, AttributeValue>[],
  what: string,
): Promise<Record<string, AttributeValue>[]> {
  const items: Record<string, AttributeValue>[] = [];
  for (let at = 0; at < keys.length; at += BATCH_GET_KEYS) {
    let pending = keys.slice(at, at + BATCH_GET_KEYS);
    for (let round = 0; pending.length > 0; round += 1) {
      if (round > BATCH_GET_ROUNDS) throw new DependencyError('DYNAMODB_UNAVAILABLE', `DynamoDB left keys of ${what} unprocessed`);
      let reply;
      try {
        reply = await client.send(new BatchGetItemCommand({ RequestItems: { [table]: { Keys: pending, ConsistentRead: true } } }));
      } catch (error) {
        throw new DependencyError('DYNAMODB_UNAVAILABLE', `DynamoDB did not answer ${what}`, { cause: error });
      }
      items.push(...(reply.Responses?.[table] ?? []));
      pending = reply.UnprocessedKeys?.[table]?.Keys ?? [];
    }
  }
  return items;
}
