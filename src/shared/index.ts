/** The bottom layer: errors with stable codes, branded ids, the clock, the one config schema, the logger. */
export {
  AppError,
  CapacityError,
  ConflictError,
  DependencyError,
  InvariantError,
  NON_RETRYABLE_CODES,
  NotFoundError,
  OverloadedError,
  ValidationError,
  isAppError,
  type AppErrorOptions,
  type ErrorCode,
} from './errors.js';
export {
  parseEventId,
  parseKeyId,
  parseLimitId,
  parsePlanId,
  parseTenantId,
  type EventId,
  type KeyId,
  type LimitId,
  type PlanId,
  type TenantId,
} from './ids.js';
export { systemClock, type Clock } from './clock.js';
export { CONFIG_SCHEMA, describeConfig, loadConfig, type AppConfig, type GatewayConfig } from './config.js';
export { createLogger, type LogLevel, type Logger } from './logger.js';
export { clientAddress, normalizeAddress, parseTrustedProxies, type TrustedProxies } from './client-address.js';
