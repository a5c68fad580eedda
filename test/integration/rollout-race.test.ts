/**
 * A promotion racing the rollout's end (issue 17): the rollout is aborted (or promoted) between the promotion's check
 * and its write. The promotion is refused as a conflict (`CONFLICT`, reason `ROLLOUT_ENDED`, the CLI's exit 2), never
 * as `DYNAMODB_UNAVAILABLE`. Provoked deterministically against DynamoDB Local: the promoting store's client runs the
 * abort just before it sends its transaction (an AWS SDK middleware: the real write, the real condition failure).
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoConfigStore } from '../../src/graphql/config/dynamo-config-store.js';
import { DynamoPlanAdmin } from '../../src/graphql/config/plan-history.js';
import { DynamoRollouts } from '../../src/graphql/config/rollouts.js';
import { createDynamoClient } from '../../src/metering/index.js';
import { AppError } from '../../src/shared/index.js';
import { bucketPlan } from '../support/plan-json.js';
import { testStack, uniqueTenant } from '../support/stack.js';

const AUDIT = { tokenId: 'race-test', action: 'plan.rollout', target: 'plan/race' };

const planOf = bucketPlan;

let redis: Redis;
const clients: DynamoDBClient[] = [];

function storesOn(client: DynamoDBClient): { plans: DynamoPlanAdmin; rollouts: DynamoRollouts } {
  const options = { tablePrefix: testStack().tablePrefix };
  const config = new DynamoConfigStore(client, options);
  const plans = new DynamoPlanAdmin(client, config, options);
  return { plans, rollouts: new DynamoRollouts({ client, config, plans, redis }, options) };
}

/** A client that runs `before` once, just before it sends its first transaction. */
function racingClient(before: () => Promise<unknown>): DynamoDBClient {
  const stack = testStack();
  const client = createDynamoClient({ endpoint: stack.dynamodbEndpoint, region: stack.dynamodbRegion });
  let hasRun = false;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === 'TransactWriteItemsCommand' && !hasRun) {
        hasRun = true;
        await before();
      }
      return next(args);
    },
    { step: 'initialize', name: 'raceBeforeTransaction' },
  );
  clients.push(client);
  return client;
}

beforeAll(() => {
  redis = new Redis(testStack().redisUrl);
  const stack = testStack();
  clients.push(createDynamoClient({ endpoint: stack.dynamodbEndpoint, region: stack.dynamodbRegion }));
});

afterAll(() => {
  redis?.disconnect();
  for (const client of clients) client.destroy();
});

async function failure(work: Promise<unknown>): Promise<AppError> {
  try {
    await work;
  } catch (error) {
    if (error instanceof AppError) return error;
    throw error;
  }
  throw new Error('expected a failure');
}

describe('a promotion racing the rollout end', () => {
  it.each(['aborted', 'promoted'] as const)('is a conflict when the rollout was %s between its check and its write', async (ending) => {
    const planId = uniqueTenant('race');
    const other = storesOn(clients[0] as DynamoDBClient);
    await other.plans.applyPlan({ raw: planOf(planId, 1, 7_000), nowMs: Date.now(), audit: AUDIT });
    await other.rollouts.start({ raw: planOf(planId, 2, 35), forMs: 600_000, nowMs: Date.now(), audit: AUDIT });

    // when the rollout ends (another operator's abort or promotion) just before this promotion writes
    const end = (): Promise<unknown> =>
      ending === 'aborted'
        ? other.rollouts.abort({ planId, nowMs: Date.now(), audit: AUDIT })
        : other.rollouts.promote({ planId, nowMs: Date.now(), audit: AUDIT });
    const racing = storesOn(racingClient(end));
    const error = await failure(racing.rollouts.promote({ planId, nowMs: Date.now(), audit: AUDIT }));

    // then it is refused as a conflict naming the end, and the plan is what the other operator left
    expect({ code: error.code, retryable: error.retryable, details: error.details }).toEqual({
      code: 'CONFLICT',
      retryable: false,
      details: { reason: 'ROLLOUT_ENDED', planId },
    });
    expect(error.message).toBe(`the rollout of plan ${planId} has ended (${ending})`);
    expect((await other.rollouts.get(planId, Date.now()))?.status).toBe(ending);
    expect((await other.plans.getPlan(planId))?.version).toBe(ending === 'aborted' ? 1 : 2);
  });
});
