/** The admin API (`/admin/graphql`) and admin tokens. The API process wires it over its stores (src/graphql). */
export { ADMIN_ENDPOINT, authenticateAdmin, createAdminApi, type AdminApi } from './api.js';
export { adminResolvers } from './resolvers.js';
export type { AdminContext, AdminDeps } from './support.js';
export type { FleetView, OperationsView, TopConsumersView } from './ports.js';
export { ADMIN_TYPE_DEFS } from './type-defs.js';
export { ADMIN_TOKEN_PREFIX, generateAdminToken, hashAdminToken, isWellFormedAdminToken } from './tokens.js';
export { writeFirstAdminToken } from './first-start.js';
export { diffPlans, type PlanChange } from './plan-diff.js';
export type {
  AdminActor,
  AdminPlanStore,
  AdminRolloutStore,
  RolloutLimitCount,
  RolloutStatus,
  RolloutView,
  PlanRecord,
  AdminStore,
  AdminTokenRecord,
  AuditEntry,
  AuditFilter,
  AuditInput,
  KeyView,
  Page,
  TenantRecord,
  TenantStatus,
} from './ports.js';
