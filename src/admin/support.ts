/** What the admin resolvers share: their dependencies and context, errors as GraphQL errors, announcing a change. */
import { createGraphQLError } from 'graphql-yoga';
import type { CorrectionDeps } from '../billing/index.js';
import type { AuditOutcome } from '../metering/index.js';
import { AppError, type Clock, type Logger, type TenantId } from '../shared/index.js';
import type {
  AdminActor,
  AdminPlanStore,
  AdminRolloutStore,
  AdminStore,
  FleetView,
  OperationsView,
  ServedPlanView,
  TopConsumersView,
} from './ports.js';

export interface AdminDeps {
  store: AdminStore;
  plans: AdminPlanStore;
  /** Plans' shadow rollouts (start, status with would-deny counts, promote, abort). */
  rollouts: AdminRolloutStore;
  /** Each key's last decided request, epoch ms by key id (the API processes flush it every second: ± 1 s). */
  /** The tenants with an account (the ones whose billing period an audit can read), sorted. */
  accountTenants: () => Promise<string[]>;
  keyActivity: { lastUsed(tenant: string): Promise<Map<string, number>> };
  /** Tells every API instance the config version moved. */
  announce: (version: number) => Promise<void>;
  /** Ensures the tenant's `account/<tenant>` workflow (signal-with-start). */
  ensureAccount: (tenant: TenantId) => Promise<void>;
  corrections: CorrectionDeps;
  /** Ledger vs admitted counters of one tenant period (the metering audit, read-only). */
  auditor: { auditTenantPeriod(input: { tenant: string; periodStartMs: number }): Promise<AuditOutcome> };
  logger: Logger;
  clock: Clock;
  /** Dashboard cookie auth: the session's admin token (null: refused) for a request without Authorization; undefined: no session cookie. */
  sessionActor?: (request: Request) => Promise<AdminActor | null | undefined>;
  /** The plan as this API instance serves it now (a running rollout's shadow limits included); absent: the field is null. */
  servedPlan?: (planId: string) => ServedPlanView | undefined;
  /** What `operations` reads (pump lag, last audit, breaker, spool, decisions); absent: the field fails. */
  operations?: () => Promise<OperationsView>;
  /** Tenants ranked by admitted units (absent: `topConsumers` fails). @throws ValidationError, DependencyError */
  topConsumers?: (input: { window: TopConsumersView['window']; first: number; nowMs: number }) => Promise<TopConsumersView>;
  /** Fleet-wide refusals and degraded periods (absent: `operations { fleet }` fails). @throws ValidationError, DependencyError */
  fleet?: (input: { minutes: number; nowMs: number }) => Promise<FleetView>;
}

export interface AdminContext {
  actor: AdminActor;
}

/** An AppError as a GraphQL error with its stable code (and the problems of a validation error). */
function toGraphQLError(error: unknown): unknown {
  if (!(error instanceof AppError)) return error;
  const status = error.code === 'NOT_FOUND' ? 404 : error.code === 'CONFLICT' ? 409 : error.retryable ? 503 : 400;
  return createGraphQLError(error.message, { extensions: { code: error.code, details: error.details, http: { status, spec: false } } });
}

export async function run<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw toGraphQLError(error);
  }
}

/** Announces a change (best effort: the instances' poll catches up) and logs it. */
export async function changed(
  deps: AdminDeps,
  input: { version: number; actor: AdminActor; action: string; target: string },
): Promise<void> {
  await deps.announce(input.version).catch((error: unknown) => {
    deps.logger.warn(
      { err: error instanceof Error ? error.message : String(error) },
      'admin change not announced; instances pick it up by polling',
    );
  });
  deps.logger.info({ tokenId: input.actor.tokenId, action: input.action, target: input.target }, 'admin change');
}
