/**
 * A flood of deferrals at one API process (issue 14): the API as `npm start` runs it, one tenant whose
 * `defer` limit is exhausted firing 600 concurrent deferrable requests, each on its own socket. The
 * instance's deferral lane (a few Temporal starts in flight, a bounded queue) either takes a deferral
 * (202) or refuses it before anything is recorded or charged (503 OVERLOADED with Retry-After, counted
 * in `tollgate_shed_total{reason="deferral-lane"}`): no 202 is lost, no job runs twice, nothing the lane
 * refused is charged, and the lane's gauges drain to zero. Before the lane, 84 of 600 were answered 503
 * JOBS_UNAVAILABLE (all their Temporal starts at once, past the 3 s deadline) and 10 got a 202.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDeciderRedis, shardOf, usageStreamKey, type DeciderRedis } from '../../src/decider/index.js';
import { DynamoJobStore } from '../../src/jobs/index.js';
import { createDynamoClient } from '../../src/metering/index.js';
import { parseLimitId, parseTenantId } from '../../src/shared/index.js';
import { metricSum, startApiServer, storeTenantPlan, type ApiServer } from '../support/api-server.js';
import { waitFor } from '../support/poll.js';
import { testStack } from '../support/stack.js';
import { streamEvents } from '../support/usage-stream.js';

const FLOOD = 600;
/** The deferrable report export: 500 for the field, 1 for its id (the decider's bucket holds exactly one). */
const EXPORT = JSON.stringify({ query: 'mutation { exportOrdersReport { id } }' });
const scratch = mkdtempSync(join(tmpdir(), 'tollgate-deferral-flood-'));
const stack = testStack();
const dynamo = createDynamoClient({ endpoint: stack.dynamodbEndpoint, region: stack.dynamodbRegion });
const jobStore = new DynamoJobStore(dynamo, { tablePrefix: stack.tablePrefix });
let redis: DeciderRedis;
let api: ApiServer | undefined;
let tenant: { tenant: string; key: string };

beforeAll(async () => {
  redis = await connectDeciderRedis({ url: stack.redisUrl, commandTimeoutMs: 5_000 });
  tenant = await storeTenantPlan([
    {
      id: parseLimitId('heavy'),
      scope: 'tenant',
      // one export fits at a time; the bucket refills one export's worth every 50 ms, so the deferred jobs all run within seconds
      algorithm: { kind: 'token-bucket', capacity: 1_000, refillAmount: 600, refillPeriodMs: 50 },
      mode: 'defer',
      onDeciderDown: 'closed',
    },
  ]);
  api = await startApiServer({
    scratch,
    env: {
      // Redis' share is 250 ms, as in the burst test: on the shared 2-core machine Redis itself is descheduled for
      // tens of ms, and a decision refused in degraded mode (503 LIMITER_UNAVAILABLE) is not what this test is about
      DECIDER_TIMEOUT_MS: '250',
      API_MAX_DEFERRALS_IN_FLIGHT: '8',
      API_MAX_DEFERRALS_QUEUED: '16',
      JOBS_MAX_QUEUED_PER_TENANT: '100000',
      JOBS_RETRY_MIN_MS: '200',
      JOBS_RETRY_MAX_MS: '2000',
    },
  });
});

afterAll(async () => {
  await api?.stop();
  redis.disconnect();
  dynamo.destroy();
  rmSync(scratch, { recursive: true, force: true });
});

interface Answer {
  status: number;
  retryAfter: string | undefined;
  body: { errors?: { extensions?: { code?: string } }[]; extensions?: { job?: { id: string } } };
}

/** One POST on its own socket. */
function post(baseUrl: string, key: string): Promise<Answer> {
  return new Promise((resolveAnswer, reject) => {
    const req = httpRequest(
      new URL('/graphql', baseUrl),
      {
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(EXPORT), authorization: `Bearer ${key}` },
      },
      (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => (text += chunk.toString()));
        response.on('end', () => {
          const retryAfter = response.headers['retry-after'];
          resolveAnswer({ status: response.statusCode ?? 0, retryAfter, body: JSON.parse(text) as Answer['body'] });
        });
      },
    );
    req.on('error', reject);
    req.end(EXPORT);
  });
}

/** Reserved usage events of the tenant, by request id. */
async function reservedByRequest(): Promise<Map<string, number>> {
  const entries = streamEvents(await redis.xrange(usageStreamKey(shardOf(parseTenantId(tenant.tenant), 256)), '-', '+'));
  const counts = new Map<string, number>();
  for (const [, fields] of entries) {
    const record: Record<string, string> = {};
    for (let i = 0; i < fields.length; i += 2) record[fields[i] as string] = fields[i + 1] as string;
    if (record['tenant'] !== tenant.tenant || record['type'] !== 'usage.reserved.v1') continue;
    const id = record['id'] as string;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

describe('a flood of deferrals at one API process', () => {
  it('takes what its deferral lane holds, refuses the rest before recording or charging it, and runs every taken job once', async () => {
    const server = api as ApiServer;
    // when one client sends the flood at once
    const answers = await Promise.all(Array.from({ length: FLOOD }, async () => post(server.baseUrl, tenant.key)));
    const tally = (status: number): number => answers.filter((answer) => answer.status === status).length;
    const refused = answers.filter((answer) => answer.status === 503);
    // then every answer is a run (200), a job (202) or a 503 with Retry-After: the lane's refusal (OVERLOADED), or
    // JOBS_UNAVAILABLE for a deferral whose own DynamoDB write or Temporal start missed its 3 s deadline (never for
    // one that waited in the lane: the deadline starts with the call; on the loaded 2-core test machine the shared
    // Temporal server itself stalls now and then)
    expect({ other: FLOOD - tally(200) - tally(202) - tally(503) }).toEqual({ other: 0 });
    const codes = refused.map((answer) => answer.body.errors?.[0]?.extensions?.code);
    // (and LIMITER_UNAVAILABLE: a decision refused in degraded mode, this plan's `closed` policy, when the loaded
    // machine descheduled Redis past its 250 ms share: never admitted, never charged; the burst tests' concern)
    const isExpected = (code: string | undefined): boolean =>
      code === 'OVERLOADED' || code === 'JOBS_UNAVAILABLE' || code === 'LIMITER_UNAVAILABLE';
    expect(codes.filter((code) => !isExpected(code))).toEqual([]);
    expect(refused.filter((answer) => answer.retryAfter === undefined)).toEqual([]);
    const overloaded = codes.filter((code) => code === 'OVERLOADED').length;
    const unavailable = codes.filter((code) => code === 'JOBS_UNAVAILABLE').length;
    const degraded = codes.filter((code) => code === 'LIMITER_UNAVAILABLE').length;
    console.log(
      `[deferral-flood] 200: ${tally(200)}, 202: ${tally(202)}, 503 OVERLOADED: ${overloaded}, JOBS_UNAVAILABLE: ${unavailable}, LIMITER_UNAVAILABLE: ${degraded}`,
    );
    // and each OVERLOADED is counted as shed, some of them by the deferral lane (the rest by admission control)
    expect(await metricSum(server.baseUrl, 'tollgate_shed_total')).toBe(overloaded);
    expect(await metricSum(server.baseUrl, 'tollgate_shed_total', /reason="deferral-lane"/)).toBeGreaterThan(0);
    // and every job taken runs exactly once
    const jobIds = answers.flatMap((answer) => (answer.status === 202 ? [answer.body.extensions?.job?.id ?? ''] : []));
    expect(new Set(jobIds).size).toBe(tally(202));
    const requestIds = await waitFor(
      'every deferred job to finish',
      async () => {
        const jobs = await Promise.all(jobIds.map(async (id) => jobStore.get(parseTenantId(tenant.tenant), id)));
        if (jobs.some((job) => job?.status !== 'succeeded')) return undefined;
        return jobs.map((job) => job?.requestId ?? '');
      },
      { timeoutMs: 240_000, intervalMs: 1_000 },
    );
    // and each run (at the edge or as a job) is charged exactly once, nothing refused by the lane is charged (a job
    // answered JOBS_UNAVAILABLE may have been recorded before its deadline passed: it runs once, as the answer warns)
    const reserved = await reservedByRequest();
    expect([...reserved.values()].filter((count) => count !== 1)).toEqual([]);
    expect(reserved.size).toBeGreaterThanOrEqual(tally(200) + tally(202));
    expect(reserved.size).toBeLessThanOrEqual(tally(200) + tally(202) + unavailable);
    expect(requestIds.filter((id) => !reserved.has(id))).toEqual([]);
    // and the lane has drained
    expect(await metricSum(server.baseUrl, 'tollgate_deferral_lane_queued')).toBe(0);
    expect(await metricSum(server.baseUrl, 'tollgate_deferral_lane_in_flight')).toBe(0);
  });
});
