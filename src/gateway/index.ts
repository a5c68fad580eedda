/** Gateway mode: tollgate in front of any GraphQL server (its schema, its execution, our limits). */
export {
  checkUpstreamSchema,
  createGateway,
  introspectUpstream,
  upstreamSchemaFromSdl,
  type GatewayOptions,
  type GatewayServer,
  type UpstreamSchemaCheck,
} from './gateway.js';
export { Upstream, type ForwardInput, type UpstreamErrorCode, type UpstreamOptions } from './upstream.js';
export { applyCostFile, parseCostFile, type CoordinateCost, type CostFile } from './cost-file.js';
