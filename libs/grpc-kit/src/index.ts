export { CallMetrics } from './call-metrics.js';
export {
  type ClientOptions,
  channelTarget,
  createClient,
  RpcError,
  readAll,
  serviceConfig,
} from './client.js';
export {
  type DefinitionOptions,
  methodDefinition,
  methodPath,
  type RequestDecoder,
  serviceDefinition,
  UndecodableRequest,
} from './definition.js';
export { Encoded, encoded } from './encoded.js';
export {
  BallastError,
  type ErrorCode,
  errorCodes,
  FIELD_TRAILER,
  failedPrecondition,
  invalidArgument,
  notFound,
  RULE_TRAILER,
  toStatus,
  unavailable,
} from './errors.js';
export { HealthState, healthService, ServingStatus } from './health.js';
export { authInterceptor, firstByteDeadline, tokenMatches } from './interceptors.js';
export { exitOnSignals, runMain } from './lifecycle.js';
export { ReflectionIndex, type ReflectionService, reflectionService } from './reflection.js';
export { type Dependency, type RunningService, type RunServiceOptions, runService } from './runtime.js';
export {
  DEFAULT_MAX_MESSAGE_BYTES,
  type GrpcServer,
  type GrpcServerOptions,
  type KitLogger,
  type ServeOptions,
  type ServiceRegistration,
  serve,
  startGrpcServer,
} from './server.js';
export { adaptService, type CallInfo, type Interceptor } from './server-adapter.js';
export { type ServerCall, ServerSpans } from './server-span.js';
export { gateRegistration, refuseUntilReady } from './serving-gate.js';
export { BoundedStreamWriter, DEFAULT_STREAM_BUFFER_BYTES } from './stream-writer.js';
export { channelCredentialsFromEnv, serverCredentialsFromEnv, type TlsEnv } from './tls.js';
export {
  grpcServerChannelOptions,
  TRANSPORT_DEFAULTS,
  type TransportLimits,
  transportLimitsFromEnv,
} from './transport-limits.js';
export type {
  CallOptions,
  HandlerContext,
  MethodClient,
  MethodImpl,
  RequestDecoders,
  ServiceClient,
  ServiceDesc,
  ServiceImpl,
} from './types.js';
export { DEFAULT_MAX_WATCHERS, isWatch, WatcherCounts } from './watchers.js';
