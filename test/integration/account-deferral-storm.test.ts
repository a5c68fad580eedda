/**
 * The storm: 2,000 deferred jobs. `npm test` runs it alone after the rest of the suite
 * (infra/test.sh sets TOLLGATE_STORM_JOBS=2000; about 5 minutes on a quiet 2-core machine): beside the
 * other files it overloads the one Temporal dev server and their timings. Without the variable it is
 * skipped. An `executeDeferredJob` attempt whose task never reached the worker's code used to sit until
 * its 5-minute start-to-close timeout; the run now heartbeats under a 30 s heartbeat timeout, so such an
 * attempt is retried within seconds.
 *
 * A storm of deferred jobs against a per-period `defer` quota of a
 * quarter of them, with 4-second billing periods: the jobs wait for quota (their retry wait is
 * 2 minutes, so only a wake gets them going again within the test), and the
 * account workflow wakes the queued ones at every period close, continuing as
 * new each period. Every job runs exactly once (the executor counts runs per
 * job), none is lost, and no period admits more than its quota.
 */
import { randomBytes } from 'node:crypto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RedisDecider,
  admittedKey,
  connectDeciderRedis,
  periodAt,
  shardOf,
  type DeciderRedis,
  type LimitSpec,
  type PeriodSpec,
} from '../../src/decider/index.js';
import { deferredJobId } from '../../src/jobs/index.js';
import { DynamoAccountStore } from '../../src/billing/index.js';
import { createDynamoClient } from '../../src/metering/index.js';
import { createLogger, parseEventId, parseLimitId, parseTenantId, systemClock, type TenantId } from '../../src/shared/index.js';
import { DynamoJobStore, type JobExecutor, type JobSettings } from '../../src/jobs/index.js';
import {
  accountTimings,
  accountWorkflowId,
  createJobsWorker,
  ensureAccountWorkflow,
  jobWorkflowId,
  submitDeferredJob,
} from '../../src/workflows/index.js';
import { accountStateQuery, type AccountCarry } from '../../src/workflows/workflows/index.js';
import { createTollgateWorker } from '../../src/workflows/index.js';
import { testConfig, uniqueTenant } from '../support/stack.js';
import { quietTemporalRuntime } from '../support/temporal.js';
import { sleep } from '../support/time.js';

// set by infra/test.sh for its own run of this file (2000); unset: skipped in the main run
const JOBS = Number(process.env['TOLLGATE_STORM_JOBS'] ?? 0);
/** How long the storm may take: generous (past a hung attempt's 5-minute timeout), it is not a speed check. */
const DEADLINE_MS = 420_000 + JOBS * 300;
const QUOTA = JOBS / 4;
const PERIOD: PeriodSpec = { unit: 'second', lengthSeconds: 4, anchorDay: 1, timeZone: 'UTC' };
const config = testConfig({ ACCOUNT_LATE_GRACE_MS: '1000' });
const suffix = randomBytes(4).toString('hex');
const accountQueue = `account-storm-${suffix}`;
const jobsQueue = `account-storm-jobs-${suffix}`;
const dynamo = createDynamoClient({ endpoint: config.dynamodb.endpoint, region: config.dynamodb.region });
const jobStore = new DynamoJobStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
const accounts = new DynamoAccountStore(dynamo, { tablePrefix: config.dynamodb.tablePrefix });
const tenant: TenantId = parseTenantId(uniqueTenant('d'));
const quota: LimitSpec = {
  id: parseLimitId('per-period'),
  scope: 'tenant',
  algorithm: { kind: 'period-quota', limit: QUOTA, period: PERIOD, thresholdsPercent: [] },
  mode: 'defer',
  onDeciderDown: 'closed',
};
/** Runs per job (keyed by the `n` variable): the executor is a fake of our own port that counts. */
const runs = new Map<number, number>();
const executor: JobExecutor = {
  policyOf: () => ({ limits: [quota], billingPeriod: PERIOD, policyVersion: 1 }),
  execute: (input) => {
    const n = Number(input.variables['n']);
    runs.set(n, (runs.get(n) ?? 0) + 1);
    return Promise.resolve({ result: { data: { n } }, actualCost: 1 });
  },
};
let redis: DeciderRedis;
let env: TestWorkflowEnvironment;
let jobsWorker: Worker;
let stop: () => Promise<void>;

describe.runIf(JOBS > 0)('deferred jobs woken by period resets', () => {
  beforeAll(async () => {
    quietTemporalRuntime();
    redis = await connectDeciderRedis({ url: config.redis.url, commandTimeoutMs: 5_000 });
    env = await TestWorkflowEnvironment.createFromExistingServer({
      address: config.temporal.address,
      namespace: config.temporal.namespace,
    });
    const decider = new RedisDecider(redis, { shardCount: 16_384, clock: systemClock });
    jobsWorker = await createJobsWorker({
      connection: env.nativeConnection,
      namespace: config.temporal.namespace,
      taskQueue: jobsQueue,
      deps: { decider, store: jobStore, executor },
    });
    const { worker, close } = await createTollgateWorker({
      config,
      connection: env.nativeConnection,
      logger: createLogger({ level: 'silent', name: 'test' }),
      taskQueue: accountQueue,
    });
    const running = [jobsWorker.run(), worker.run()];
    stop = async () => {
      jobsWorker.shutdown();
      worker.shutdown();
      await Promise.all(running);
      close();
    };
  });

  afterAll(async () => {
    await env.client.workflow
      .getHandle(accountWorkflowId(tenant))
      .terminate('test over')
      .catch(() => undefined);
    await stop();
    await env.teardown();
    redis.disconnect();
    dynamo.destroy();
  });

  it(
    'runs each deferred job exactly once across several periods, never more than the quota per period',
    async () => {
      // given an account on 4-second periods and its workflow
      await accounts.put(
        { tenant, billingPeriod: PERIOD, price: { currency: 'EUR', baseFeeMicros: 0, includedUnits: 0, tiers: [{ unitPriceMicros: 1 }] } },
        Date.now(),
      );
      await ensureAccountWorkflow(env.client, { tenant, taskQueue: accountQueue, timings: accountTimings(config) });

      // when the jobs are submitted (each waits 2 minutes when refused, unless woken)
      const settings: JobSettings = {
        taskQueue: jobsQueue,
        ttlMs: 600_000,
        retryMinMs: 120_000,
        retryMaxMs: 120_000,
        maxQueuedPerTenant: JOBS,
      };
      const queue = Array.from({ length: JOBS }, (_, n) => n);
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          for (let n = queue.shift(); n !== undefined; n = queue.shift()) {
            const requestId = `storm-${suffix}-${n}`;
            await submitDeferredJob({
              client: env.client,
              store: jobStore,
              settings,
              job: {
                jobId: deferredJobId(tenant, parseEventId(requestId)),
                tenant,
                keyId: 'k1',
                planId: 'storm',
                requestId,
                operationName: 'Storm',
                query: 'mutation Storm($n: Int!) { storm(n: $n) }',
                variables: { n },
                cost: 1,
                nowMs: Date.now(),
              },
            });
          }
        }),
      );
      const deadline = Date.now() + DEADLINE_MS;
      let lastLogMs = Date.now();
      while (Date.now() < deadline && (runs.size < JOBS || (await jobStore.openJobs(tenant)) > 0)) {
        await sleep(500);
        if (Date.now() - lastLogMs >= 10_000) {
          lastLogMs = Date.now();
          console.log(`[account-deferral-storm] ${runs.size}/${JOBS} jobs ran, ${await jobStore.openJobs(tenant)} open`);
        }
      }

      if (runs.size < JOBS) {
        // say where the missing ones are before failing
        for (let n = 0; n < JOBS; n += 1) {
          if (runs.has(n)) continue;
          const jobId = deferredJobId(tenant, parseEventId(`storm-${suffix}-${n}`));
          const job = await jobStore.get(tenant, jobId);
          const handle = env.client.workflow.getHandle(jobWorkflowId({ tenant, jobId }));
          const history = await handle.fetchHistory();
          const events = (history.events ?? []).slice(-12).map((event) => String(event.eventType));
          const described = await handle.describe();
          const pending = (described.raw.pendingActivities ?? []).map((activity) => ({
            type: activity.activityType?.name,
            state: activity.state,
            attempt: activity.attempt,
            lastStarted: String(activity.lastStartedTime?.seconds ?? ''),
            failure: activity.lastFailure?.message,
            worker: activity.lastWorkerIdentity,
          }));
          console.log(
            `[account-deferral-storm] job ${n} never ran: ${JSON.stringify(job)} ${described.status.name} ${events.join(' ')} pending ${JSON.stringify(pending)}`,
          );
        }
        console.log(
          `[account-deferral-storm] account ${JSON.stringify(await env.client.workflow.getHandle(accountWorkflowId(tenant)).query(accountStateQuery))}`,
        );
      }
      // then every job ran exactly once and finished; none is left waiting
      expect(runs.size).toBe(JOBS);
      expect([...runs.values()].every((count) => count === 1)).toBe(true);
      expect(await jobStore.openJobs(tenant)).toBe(0);
      expect(await jobStore.listQueued(tenant)).toEqual([]);
      const startedPerPeriod = new Map<number, number>();
      for (let n = 0; n < JOBS; n += 1) {
        const job = await jobStore.get(tenant, deferredJobId(tenant, parseEventId(`storm-${suffix}-${n}`)));
        expect(job?.status, `job ${n}`).toBe('succeeded');
        const period = periodAt(PERIOD, job?.startedAtMs ?? 0).startMs;
        startedPerPeriod.set(period, (startedPerPeriod.get(period) ?? 0) + 1);
      }
      // admissions spread over at least four periods; the decider's admitted counter of each period (Redis' clock)
      // never exceeds the quota and they sum to the number of jobs
      expect(startedPerPeriod.size).toBeGreaterThanOrEqual(4);
      const starts = [...startedPerPeriod.keys()];
      const admitted: number[] = [];
      for (let start = Math.min(...starts) - 4_000; start <= Math.max(...starts) + 4_000; start += 4_000) {
        admitted.push(Number((await redis.get(admittedKey(shardOf(tenant, 16_384), tenant, start))) ?? '0'));
      }
      expect(admitted.reduce((sum, units) => sum + units, 0)).toBe(JOBS);
      expect(Math.max(...admitted)).toBeLessThanOrEqual(QUOTA);
      const state: AccountCarry = await env.client.workflow.getHandle(accountWorkflowId(tenant)).query(accountStateQuery);
      expect(state.counters.runs).toBeGreaterThanOrEqual(4);
      expect(state.counters.woken).toBeGreaterThan(0);
      const handle = env.client.workflow.getHandle(
        jobWorkflowId({ tenant, jobId: deferredJobId(tenant, parseEventId(`storm-${suffix}-${JOBS - 1}`)) }),
      );
      expect((await handle.describe()).status.name).toBe('COMPLETED');
      console.log(
        `[account-deferral-storm] ${JOBS} jobs admitted per period ${admitted.filter((units) => units > 0).join(', ')}, account runs ${state.counters.runs}, wake signals ${state.counters.woken}`,
      );
    },
    DEADLINE_MS + 120_000,
  );
});
