/**
 * The decider's public surface: the `Decider` port and its Redis
 * implementations, the limit schema, key names other areas read (the usage
 * stream, admitted counters), connection helpers and calendar periods.
 * Internals (argument encoding, reply decoders, the pure model) are imported
 * from their modules by the decider's own tests.
 */
export type { DecideInput, Decider, Decision, LimitSpec, LimitState, SettleInput, Warning } from './ports.js';
export type { SettleResult } from './replies.js';
export { RedisDecider } from './decider.js';
export { ResilientDecider, type SpoolReport } from './resilient.js';
export { FileSpool } from './spool.js';
export { InstanceRegistry } from './instances.js';
export { MAX_RECORD_TTL_MS } from './compile.js';
export { integerIn, limitsInTenantCalendar, limitsSchema, periodSpecSchema, schemaProblems } from './policy.js';
export { assertNoEviction, connectDeciderRedis, createDeciderRedis, type DeciderRedis } from './redis.js';
export { redisErrorPrefix } from './redis-errors.js';
export { probeDecider } from './probe.js';
/** The model and compiler, for the what-if replay (src/billing/replay.ts): the same decisions as the scripts. */
export { compileRequest, type CompiledRequest } from './compile.js';
export { ALG, decideModel, emptyModelState, settleModel, type CompiledLimit, type ModelRequest, type RawDecision } from './model/limits.js';
export { peekLimits, type PeekInput, type PeekResult, type PeekedLimit } from './peek.js';
export { ADMITTED_TTL_MS, appendUsage } from './usage-log.js';
export {
  MAX_SUB_SHARDS,
  admittedKey,
  admittedKeyPattern,
  bucketKey,
  deadLetterStreamKey,
  parseAdmittedKey,
  parseIpHex,
  shardOf,
  shardOfPart,
  usageStreamKey,
  type ShardId,
} from './keys.js';
export {
  MAX_PERIOD_SECONDS,
  inTenantCalendar,
  isValidTimeZone,
  periodAt,
  periodPairAt,
  nextPeriod,
  type Period,
  type PeriodSpec,
} from './model/period.js';
