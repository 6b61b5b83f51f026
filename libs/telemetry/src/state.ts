import type { MeterProvider } from '@opentelemetry/api';
import type { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import type { MeterProvider as SdkMeterProvider } from '@opentelemetry/sdk-metrics';
import type { NodeSDK } from '@opentelemetry/sdk-node';
import type { LocalMetrics } from './local-metrics.js';

export interface TelemetryState {
  sdk?: NodeSDK;
  prometheus?: PrometheusExporter;
  meterProvider?: MeterProvider;
  /** Set only when metrics were created lazily (no preload); the SDK's provider otherwise. */
  ownedMeterProvider?: SdkMeterProvider;
  shutdown?: Promise<void>;
  /** The hot paths' counters and histograms, which every Prometheus exporter here also serves. */
  localMetrics?: LocalMetrics;
}

// Kept on globalThis, not in module scope: the preload is loaded by path (dist/register.js) and the
// service imports the package entry, and any second copy of this package (a test loading src/, a
// nested install) must still find the one SDK and the one Prometheus registry of the process.
const KEY = Symbol.for('@ballast/telemetry');

export function telemetryState(): TelemetryState {
  const holder = globalThis as { [KEY]?: TelemetryState };
  holder[KEY] ??= {};
  return holder[KEY];
}
