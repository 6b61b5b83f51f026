export { GrpcClientInstrumentation } from './grpc-client-instrumentation.js';
export type { HttpServerOptions, RouteHandler, RunningHttpServer } from './http-server.js';
export { startHttpServer } from './http-server.js';
export type {
  CounterSeries,
  HistogramSeries,
  LocalCounter,
  LocalHistogram,
  LocalHistogramOptions,
  LocalInstrumentOptions,
} from './local-metrics.js';
export type { Logger, LoggerOptions } from './logger.js';
export { createLogger } from './logger.js';
export {
  createPrometheusExporter,
  getMeter,
  getPrometheusExporter,
  handleMetricsRequest,
  localMetrics,
  PROMETHEUS_CONTENT_TYPE,
} from './metrics.js';
export { registerProcessMetrics } from './process-metrics.js';
export { ballastResource, serviceNameFromEnv } from './resource.js';
export type { StartTelemetryOptions } from './sdk.js';
export {
  defaultInstrumentations,
  instrumentProcess,
  shutdownTelemetry,
  startTelemetry,
  traceExportEndpoint,
} from './sdk.js';
export {
  ballastSpanProcessors,
  DropHousekeepingProcessor,
  GRPC_SERVER_ERROR_CODES,
  HOUSEKEEPING_QUEUE_OPERATIONS,
  HOUSEKEEPING_RPC_SERVICES,
  isHousekeepingSpan,
  traceHousekeeping,
} from './spans.js';
export { activeTraceparent, spanContextOf } from './traceparent.js';
