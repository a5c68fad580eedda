/** Gateway mode: tollgate in front of any GraphQL server (its schema, its execution, our limits). */
export {
  cachedUpstreamCheck,
  checkUpstreamSchema,
  createGateway,
  gatewayParts,
  isUpstreamFailure,
  introspectUpstream,
  upstreamSchemaFromSdl,
  type GatewayOptions,
  type GatewayParts,
  type GatewayServer,
  type UpstreamSchemaCheck,
} from './gateway.js';
export { Upstream, type ForwardInput, type UpstreamErrorCode, type UpstreamOptions } from './upstream.js';
export { applyCostFile, parseCostFile, type CoordinateCost, type CostFile } from './cost-file.js';
export { gatewayFromConfig, loadGatewaySchema, upstreamOptions } from './from-config.js';
