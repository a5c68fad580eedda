/**
 * Stored responses for Idempotency-Key retries. The decider already makes a
 * retried key one decision and one charge; this keeps what the first attempt
 * answered, so a retry gets the same body instead of an error, and the
 * operation (a mutation's side effects) runs once.
 *
 * What is stored is the result as the client saw it: errors are masked first
 * (an unexpected error's message never becomes replayable text), then kept in
 * their JSON form and sent back verbatim.
 *
 * Stored form: JSON `{"v":1,"at":<storedAtMs>,"r":{data?,errors?,extensions?}}`,
 * written once, with the same lifetime as the decider's request record, so the
 * response never outlives the decision it belongs to.
 */
import { GraphQLError, type ExecutionResult, type GraphQLFormattedError } from 'graphql';
import { maskError } from 'graphql-yoga';
import {
  ConditionalCheckFailedException,
  GetItemCommand,
  PutItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { DependencyError, type EventId, type TenantId } from '../../shared/index.js';

/** A response as the client first received it (JSON-safe). */
export interface StoredResult {
  data?: unknown;
  errors?: GraphQLFormattedError[];
  extensions?: Record<string, unknown>;
}

export interface StoredResponse {
  result: StoredResult;
  /** When the first attempt was stored, ms since the epoch (the API's clock). */
  storedAtMs: number;
}

export type SaveOutcome = 'stored' | 'exists' | 'too-large';

/** Port: where first responses of idempotent requests live. */
export interface ResponseStore {
  /** Keeps the first response; a second save for the same request changes nothing. */
  save(input: { tenant: TenantId; requestId: EventId; result: StoredResult; ttlMs: number; nowMs: number }): Promise<SaveOutcome>;
  load(input: { tenant: TenantId; requestId: EventId; nowMs: number }): Promise<StoredResponse | undefined>;
}

/** The message yoga's error masking gives unexpected errors (the same the client saw). */
const UNEXPECTED = 'Unexpected error.';

/** The JSON form of a result as the client receives it: errors masked the way yoga masks them. */
export function toStoredResult(result: ExecutionResult): StoredResult {
  return {
    ...(result.data === undefined ? {} : { data: result.data }),
    ...(result.errors === undefined
      ? {}
      : { errors: result.errors.map((error) => (maskError(error, UNEXPECTED, false) as GraphQLError).toJSON()) }),
    ...(result.extensions === undefined ? {} : { extensions: result.extensions }),
  };
}

/** An error that serializes to exactly what was stored (its message, locations, path and extensions). */
class ReplayedGraphQLError extends GraphQLError {
  constructor(private readonly stored: GraphQLFormattedError) {
    super(stored.message, {
      ...(stored.path === undefined ? {} : { path: stored.path }),
      ...(stored.extensions === undefined ? {} : { extensions: stored.extensions }),
    });
  }

  override toJSON(): GraphQLFormattedError {
    return this.stored;
  }
}

/** The stored result as an execution result yoga can send again (same JSON, same HTTP status). */
export function toExecutionResult(stored: StoredResult): ExecutionResult {
  return {
    ...(stored.data === undefined ? {} : { data: stored.data as Record<string, unknown> | null }),
    ...(stored.errors === undefined ? {} : { errors: stored.errors.map((error) => new ReplayedGraphQLError(error)) }),
    ...(stored.extensions === undefined ? {} : { extensions: stored.extensions }),
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses a stored value; anything else (another layout version, damage) reads as absent. */
export function parseStoredResponse(raw: string): StoredResponse | undefined {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (!isRecord(value) || value['v'] !== 1 || typeof value['at'] !== 'number' || !isRecord(value['r'])) return undefined;
  const result = value['r'];
  if (result['errors'] !== undefined && !Array.isArray(result['errors'])) return undefined;
  if (result['extensions'] !== undefined && !isRecord(result['extensions'])) return undefined;
  return { result, storedAtMs: value['at'] };
}

/** Physical name of the responses table; must agree with infra/tables.ts. */
export function responsesTableName(prefix: string): string {
  return `${prefix}responses`;
}

export interface DynamoResponseStoreOptions {
  tablePrefix: string;
  /** Responses larger than this (UTF-8 bytes of JSON) are not kept; their retries get a 409. @default 262144 (DynamoDB items hold 400 KB) */
  maxBytes?: number;
}

/**
 * Responses in DynamoDB (table `<prefix>responses`), one item per request:
 * pk `resp#<tenant>#<requestId>`, sk `response`, `body` (the JSON above),
 * `storedAtMs`, `expiresAt` (epoch seconds: DynamoDB TTL deletes it some time
 * after; reads treat it as gone from that second on). Written once
 * (`attribute_not_exists`). Not in Redis: a day of kept responses is far more
 * than the limiter's memory should hold.
 */
export class DynamoResponseStore implements ResponseStore {
  private readonly table: string;
  private readonly maxBytes: number;

  constructor(
    private readonly client: DynamoDBClient,
    options: DynamoResponseStoreOptions,
  ) {
    this.table = responsesTableName(options.tablePrefix);
    this.maxBytes = options.maxBytes ?? 262_144;
  }

  /** @throws DependencyError `DYNAMODB_UNAVAILABLE` when DynamoDB does not answer */
  async save(input: { tenant: TenantId; requestId: EventId; result: StoredResult; ttlMs: number; nowMs: number }): Promise<SaveOutcome> {
    const value = JSON.stringify({ v: 1, at: input.nowMs, r: input.result });
    if (Buffer.byteLength(value, 'utf8') > this.maxBytes) return 'too-large';
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.table,
          Item: {
            pk: { S: `resp#${input.tenant}#${input.requestId}` },
            sk: { S: 'response' },
            body: { S: value },
            storedAtMs: { N: String(input.nowMs) },
            expiresAt: { N: String(Math.ceil((input.nowMs + input.ttlMs) / 1000)) },
          },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return 'stored';
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return 'exists';
      throw new DependencyError('DYNAMODB_UNAVAILABLE', 'could not store the response of an idempotent request', { cause: error });
    }
  }

  /** @throws DependencyError `DYNAMODB_UNAVAILABLE` when DynamoDB does not answer */
  async load(input: { tenant: TenantId; requestId: EventId; nowMs: number }): Promise<StoredResponse | undefined> {
    let item: Record<string, AttributeValue> | undefined;
    try {
      const reply = await this.client.send(
        new GetItemCommand({
          TableName: this.table,
          Key: { pk: { S: `resp#${input.tenant}#${input.requestId}` }, sk: { S: 'response' } },
          ConsistentRead: true,
        }),
      );
      item = reply.Item;
    } catch (error) {
      throw new DependencyError('DYNAMODB_UNAVAILABLE', 'could not read the response of an idempotent request', { cause: error });
    }
    if (item === undefined) return undefined;
    if (Number(item['expiresAt']?.N ?? '0') * 1000 <= input.nowMs) return undefined;
    return parseStoredResponse(item['body']?.S ?? '');
  }
}
