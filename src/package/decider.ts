/**
 * `tollgate/decider`: the `Decider` port and its Redis implementations
 * (`RedisDecider`, `ResilientDecider` with its spool), connection helpers and
 * the limit schema.
 */
export * from '../decider/index.js';
export { systemClock, type Clock } from '../shared/index.js';
