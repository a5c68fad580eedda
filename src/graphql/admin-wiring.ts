/**
 * The admin API in the API process: `/admin/graphql` (src/admin) over the config table, announcing
 * every change on the config channel, beside the tenant API (`/graphql`) on the same port. At a
 * demo-seeded start (`npm start`) the first admin token is written to `API_ADMIN_TOKEN_FILE`.
 */
import type { RequestListener } from 'node:http';
import { resolve } from 'node:path';
import { Client } from '@temporalio/client';
import { ADMIN_ENDPOINT, createAdminApi, writeFirstAdminToken, type AdminApi } from '../admin/index.js';
import { DynamoAccountStore } from '../billing/index.js';
import { DynamoAuditStore, MeteringAuditor } from '../metering/index.js';
import { systemClock, type PlanId } from '../shared/index.js';
import { accountTimings, ensureAccountWorkflow } from '../workflows/index.js';
import type { ApiProcessDeps } from './api-process.js';
import { DynamoAdminStore } from './config/admin-store.js';
import { DynamoConfigStore } from './config/dynamo-config-store.js';
import { announceConfigVersion } from './config/live-config.js';
import { DynamoPlanAdmin } from './config/plan-history.js';
import { DynamoRollouts } from './config/rollouts.js';
import { readLastUsed } from './usage/activity.js';
import { readFleet } from './usage/fleet.js';
import { readTopConsumers } from './usage/rankings.js';
import { operationsReader, operatorFromSession } from './dashboard/index.js';

/** The admin API over the process's clients; writes the first admin token when the demo is seeded. */
export async function createProcessAdminApi(deps: ApiProcessDeps): Promise<AdminApi> {
  const { config, logger, dynamo, redis } = deps;
  const options = { tablePrefix: config.dynamodb.tablePrefix };
  const store = new DynamoAdminStore(dynamo, new DynamoConfigStore(dynamo, options), options);
  if (config.api.isDemoSeeded) {
    await writeFirstAdminToken({ store, file: resolve(config.api.adminTokenFile), logger, nowMs: Date.now() });
  }
  const temporal = new Client({ connection: deps.temporal, namespace: config.temporal.namespace });
  const configStore = new DynamoConfigStore(dynamo, options);
  const accounts = new DynamoAccountStore(dynamo, options);
  const plans = new DynamoPlanAdmin(dynamo, configStore, options);
  return createAdminApi({
    store,
    plans,
    accountTenants: async () => [...(await accounts.listBillingPeriods()).periods.keys()].sort(),
    keyActivity: { lastUsed: (tenant) => readLastUsed(redis, tenant) },
    rollouts: new DynamoRollouts({ client: dynamo, config: configStore, plans, redis, shardCount: config.redis.shardCount }, options),
    servedPlan: (id) => {
      const plan = deps.liveConfig.get(id as PlanId);
      return plan === undefined ? undefined : { ...plan, rolloutVersion: deps.liveConfig.rolloutOf(id)?.version ?? null };
    },
    announce: (version) => announceConfigVersion(redis, version),
    ensureAccount: (tenant) =>
      ensureAccountWorkflow(temporal, { tenant, taskQueue: config.temporal.taskQueue, timings: accountTimings(config) }),
    corrections: { redis, shardCount: config.redis.shardCount, accounts },
    auditor: new MeteringAuditor(redis, dynamo, { shardCount: config.redis.shardCount, tablePrefix: config.dynamodb.tablePrefix }),
    logger,
    clock: systemClock,
    sessionActor: operatorFromSession(deps.sessions),
    topConsumers: (input) => readTopConsumers(redis, input),
    fleet: (input) => readFleet(redis, input),
    operations: operationsReader({
      redis,
      shardCount: config.redis.shardCount,
      audits: new DynamoAuditStore(dynamo, options),
      decider: deps.decider,
      metrics: deps.metrics,
    }),
  });
}

/** `/admin/…` to the admin API, everything else to the tenant API. */
export function routeAdmin(admin: AdminApi, api: RequestListener): RequestListener {
  return (request, response) => {
    const path = (request.url ?? '/').split('?')[0] ?? '/';
    if (path === ADMIN_ENDPOINT || path.startsWith('/admin/')) void admin.requestListener(request, response);
    else api(request, response);
  };
}
