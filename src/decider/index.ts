export * from './keys.js';
export * from './replies.js';
export * from './redis.js';
export * from './scripts.js';
export * from './usage-log.js';
export { redisErrorPrefix } from './redis-errors.js';
export * from './probe.js';
