/**
 * `tollgate/yoga`: protect a yoga server. The plugin (`useTollgate`) and its
 * options, the cost directives to declare in a schema (`COST_DIRECTIVES_SDL`),
 * plans and keys (in memory or DynamoDB), and the logger and clock the
 * options take. The demo API is not part of the package.
 */
export * from '../graphql/index.js';
export { createLogger, systemClock, type Clock, type Logger, type LogLevel } from '../shared/index.js';
