/**
 * The GraphQL edge: the `useTollgate` plugin and its parts (identity, pricing, responses), plans and keys
 * (live config), Idempotency-Key responses, the job executor. The demo API (`./demo/index.ts`) and the app
 * that serves it (`./app.ts`, `createApi`) are not part of this surface.
 */
export { Admission, CRITICALITIES, type AdmissionLease, type Criticality, type InFlightBounds } from './admission.js';
export { limitRequestBodies, type BodyLimitOptions, type BodyLimitedHandlers } from './body-limit.js';
export { runReadiness, type ReadinessCheck, type ReadinessReport } from './readiness.js';
export { InMemoryPlanStore, accountPlanProblems, parsePlan, planForTenant, tenantPlanOf, type Plan, type PlanStore } from './plans.js';
export { TollgateMetrics, type TollgateMetricsOptions } from './metrics.js';
export { applyRefund, costExtension, rateLimitHeaders, retryAfterSeconds, warningReports, type CostExtension } from './responses.js';
export { TokenLimitError } from './token-limit.js';
export { COST_DIRECTIVES_SDL, CostModel, PricingError, type CostModelOptions } from './cost/model.js';
export { engineCost } from './cost/estimators.js';
export { measureActualCost } from './cost/actual-cost.js';
export { Pricer, type PriceInput, type PriceResult, type PricerOptions } from './cost/pricer.js';
export { STATIC_LIMIT_DEFAULTS, checkStaticLimits, measureDocument, type StaticLimits } from './cost/guards.js';
export { quoteOperation, type QuoteInput, type QuoteResult } from './cost/quote.js';
export { generateApiKey, hashApiKey, isWellFormedApiKey } from './identity/api-key.js';
export { InMemoryKeyStore, type ApiKeyRecord, type KeyStore } from './identity/key-store.js';
export { ApiKeyIdentifier, type AnonymousPolicy, type IdentifierOptions, type Identity, type IdentifyResult } from './identity/identify.js';
export { forwardedClientIp } from './identity/client-address.js';
export { useTollgate, type TollgateContext, type TollgateOptions } from './plugins/use-tollgate.js';
export { requestPath, useReadyEndpoint } from './plugins/request-path.js';
export { useMetricsEndpoint, type MetricsEndpointOptions } from './plugins/use-metrics-endpoint.js';
export { useJobStatus, type JobStatusOptions } from './plugins/use-job-status.js';
export { SchemaJobExecutor, type SchemaJobExecutorOptions } from './jobs/executor.js';
export {
  DynamoResponseStore,
  parseStoredResponse,
  responsesTableName,
  toExecutionResult,
  toStoredResult,
  type DynamoResponseStoreOptions,
  type ResponseStore,
} from './idempotency/response-store.js';
export { DynamoConfigStore, configTableName } from './config/dynamo-config-store.js';
export { putAccountSettings } from './config/account-settings.js';
export { LiveConfig, announceConfigVersion, type LiveConfigOptions } from './config/live-config.js';
