export type { HttpServerOptions, RouteHandler, RunningHttpServer } from './http-server.js';
export { startHttpServer } from './http-server.js';
export type { Logger, LoggerOptions } from './logger.js';
export { createLogger } from './logger.js';
export {
  createPrometheusExporter,
  getMeter,
  getPrometheusExporter,
  handleMetricsRequest,
  PROMETHEUS_CONTENT_TYPE,
} from './metrics.js';
export { registerProcessMetrics } from './process-metrics.js';
export { ballastResource, serviceNameFromEnv } from './resource.js';
export type { StartTelemetryOptions } from './sdk.js';
export { defaultInstrumentations, shutdownTelemetry, startTelemetry, traceExportEndpoint } from './sdk.js';
export { activeTraceparent, spanContextOf } from './traceparent.js';
