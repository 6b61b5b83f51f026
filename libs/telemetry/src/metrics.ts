import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Meter, type MeterOptions, type MeterProvider, metrics } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider as SdkMeterProvider } from '@opentelemetry/sdk-metrics';
import { LocalMetrics } from './local-metrics.js';
import { ballastResource } from './resource.js';
import { telemetryState } from './state.js';

/** Prometheus text format 0.0.4, said explicitly: Prometheus 3 refuses scrapes with a vague type. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** The process's hot-path instruments (local-metrics.ts), served with the SDK's on /metrics. */
export function localMetrics(): LocalMetrics {
  const state = telemetryState();
  state.localMetrics ??= new LocalMetrics();
  return state.localMetrics;
}

/** Each service serves /metrics on its own HTTP port (startHttpServer), so the exporter must not open 9464. */
export function createPrometheusExporter(): PrometheusExporter {
  return new PrometheusExporter({ preventServerStart: true, metricProducers: [localMetrics()] });
}

interface Metrics {
  exporter: PrometheusExporter;
  meterProvider: MeterProvider;
}

// Without the preload (tests, scripts) nothing has set metrics up yet: do it on first use, so that
// meters record and /metrics answers all the same.
function ensureMetrics(): Metrics {
  const state = telemetryState();
  if (state.prometheus && state.meterProvider) {
    return { exporter: state.prometheus, meterProvider: state.meterProvider };
  }
  const exporter = createPrometheusExporter();
  const meterProvider = new SdkMeterProvider({ resource: ballastResource(), readers: [exporter] });
  // Global too, so libraries that meter through the OTel API land on the same /metrics. Should
  // someone have registered a provider first, theirs stays global and getMeter still uses this one.
  metrics.setGlobalMeterProvider(meterProvider);
  state.prometheus = exporter;
  state.meterProvider = meterProvider;
  state.ownedMeterProvider = meterProvider;
  return { exporter, meterProvider };
}

/** A meter whose instruments appear on this process's /metrics. */
export function getMeter(name: string, version?: string, options?: MeterOptions): Meter {
  return ensureMetrics().meterProvider.getMeter(name, version, options);
}

export function getPrometheusExporter(): PrometheusExporter {
  return ensureMetrics().exporter;
}

/** Answers a scrape with every metric of the process, in Prometheus text format. */
export function handleMetricsRequest(req: IncomingMessage, res: ServerResponse): void {
  getPrometheusExporter().getMetricsRequestHandler(req, res);
  // The exporter sets a bare `text/plain` and ends the response only once collection is done.
  if (!res.headersSent) res.setHeader('content-type', PROMETHEUS_CONTENT_TYPE);
}
