/** The dashboard's server side (issue 18): sessions, cookie auth of the usage and admin APIs, and `/dashboard`. */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DeciderRedis } from '../../decider/index.js';
import { parseTrustedProxies, systemClock, type Logger } from '../../shared/index.js';
import { DynamoAdminStore } from '../config/admin-store.js';
import { DynamoConfigStore } from '../config/dynamo-config-store.js';
import type { KeyStore } from '../identity/key-store.js';
import { DashboardRoutes } from './routes.js';
import { DashboardSessions } from './sessions.js';
import { defaultDashboardDir } from './static-files.js';

export { tenantFromSession, operatorFromSession } from './cookie-auth.js';
export { DashboardSessions, SESSION_COOKIE, CSRF_HEADER } from './sessions.js';
export { DashboardRoutes } from './routes.js';
export { CONTENT_SECURITY_POLICY } from './headers.js';
export { operationsReader } from './operations.js';

/** Sessions over the process's Redis, its live keys and the admin tokens of the config table. */
export function createDashboardSessions(input: {
  redis: DeciderRedis;
  dynamo: DynamoDBClient;
  tablePrefix: string;
  keyStore: KeyStore;
}): DashboardSessions {
  const options = { tablePrefix: input.tablePrefix };
  const adminTokens = new DynamoAdminStore(input.dynamo, new DynamoConfigStore(input.dynamo, options), options);
  return new DashboardSessions({ redis: input.redis, keyStore: input.keyStore, adminTokens, clock: systemClock });
}

/** `/dashboard` in front of the rest of the API's routes. */
export function createDashboardRoutes(input: {
  sessions: DashboardSessions;
  logger: Logger;
  trustedProxies: string;
  dir?: string;
}): DashboardRoutes {
  return new DashboardRoutes({
    sessions: input.sessions,
    dir: input.dir ?? defaultDashboardDir(),
    logger: input.logger,
    clock: systemClock,
    trustedProxies: parseTrustedProxies(input.trustedProxies),
  });
}
