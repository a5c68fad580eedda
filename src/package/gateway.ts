/**
 * `tollgate/gateway`: tollgate in front of a GraphQL server it does not run.
 * `createGateway` (a yoga server over the upstream's schema, forwarding what
 * `useTollgate` admitted), the schema from SDL or introspection, the cost file,
 * and the upstream schema check `/ready` runs. The `tollgate gateway` command
 * (package.json `bin`) runs the whole API process in gateway mode.
 */
export * from '../gateway/index.js';
