import { register } from 'node:module';
import { isMainThread } from 'node:worker_threads';
import { metrics } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import type { Instrumentation, InstrumentationBase } from '@opentelemetry/instrumentation';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor, NoopSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { GrpcClientInstrumentation } from './grpc-client-instrumentation.js';
import { createPrometheusExporter } from './metrics.js';
import { ballastResource, serviceNameFromEnv } from './resource.js';
import { ballastSpanProcessors } from './spans.js';
import { telemetryState } from './state.js';

/**
 * gRPC clients only: the auto-instrumentations bundle would patch (and slow) modules nobody
 * asked to trace, and server spans come from @ballast/grpc-kit's adapter.
 */
export function defaultInstrumentations(): InstrumentationBase[] {
  return [new GrpcClientInstrumentation()];
}

/**
 * Where spans go, or undefined for nowhere. Only an explicit OTLP endpoint turns export on, so a
 * developer's laptop never retries a collector that is not there; OTEL_TRACES_EXPORTER=none still
 * turns it off. Export is always OTLP over gRPC (port 4317), whatever OTEL_EXPORTER_OTLP_PROTOCOL says.
 */
export function traceExportEndpoint(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '').split(',').map((name) => name.trim());
  return endpoint && !exporters.includes('none') ? endpoint : undefined;
}

export interface StartTelemetryOptions {
  instrumentations?: Instrumentation[];
  /**
   * service.name when OTEL_SERVICE_NAME is not set, ahead of BALLAST_SERVICE: a program that is
   * no service (the CLI: 'ballast-cli') names itself even where a service's variables are set.
   */
  serviceName?: string;
}

/**
 * Starts the OpenTelemetry SDK once per process. Call it before @grpc/grpc-js is loaded, which is
 * what the `@ballast/telemetry/register` preload does; later calls return the running SDK.
 */
export function startTelemetry(options: StartTelemetryOptions = {}): NodeSDK | undefined {
  const state = telemetryState();
  if (state.sdk) return state.sdk;
  if (process.env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return undefined;

  // Metrics already made lazily (getMeter before startTelemetry) stay where they are; a second
  // provider could not become global and its exporter would serve nothing.
  const prometheus = state.meterProvider ? undefined : createPrometheusExporter();
  const exportTraces = traceExportEndpoint() !== undefined;
  const serviceName = process.env.OTEL_SERVICE_NAME || options.serviceName || serviceNameFromEnv();
  const sdk = new NodeSDK({
    resource: ballastResource(),
    ...(serviceName === undefined ? {} : { serviceName }),
    instrumentations: options.instrumentations ?? defaultInstrumentations(),
    metricReaders: prometheus ? [prometheus] : [],
    // Logs go to stdout through pino; an empty list stops NodeSDK defaulting to an OTLP log exporter.
    logRecordProcessors: [],
    // With no exporter a no-op processor still gets a real TracerProvider registered: spans get ids
    // (the logger stamps them, W3C context still propagates) and OTEL_TRACES_SAMPLER applies.
    // Exported spans pass the gRPC status rule and the housekeeping filter (spans.ts).
    spanProcessors: exportTraces
      ? ballastSpanProcessors(new BatchSpanProcessor(new OTLPTraceExporter()))
      : [new NoopSpanProcessor()],
  });
  sdk.start();

  state.sdk = sdk;
  if (prometheus) {
    state.prometheus = prometheus;
    state.meterProvider = metrics.getMeterProvider();
  }
  return sdk;
}

/**
 * What the `@ballast/telemetry/register` preload does, callable from a program's own entry (the
 * CLI): the ESM loader hook that lets the instrumentations patch grpc-js, then the SDK. Modules
 * imported after it (dynamically: static imports are loaded first) are instrumented. Does nothing
 * in a worker thread or with OTEL_SDK_DISABLED=true.
 */
export function instrumentProcess(options: Omit<StartTelemetryOptions, 'instrumentations'> = {}): void {
  if (!isMainThread || process.env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return;
  if (telemetryState().sdk) return;
  const instrumentations = defaultInstrumentations();
  // An ESM `import` of grpc-js (a CommonJS package) does not go through require(), so
  // require-in-the-middle never sees it: on Node 20 grpc-js stays unpatched without this loader
  // hook. `include` limits import-in-the-middle to the modules the instrumentations patch, instead
  // of wrapping every module the program loads.
  const include = instrumentations.flatMap((i) =>
    i.getModuleDefinitions().map((definition) => definition.name),
  );
  register('import-in-the-middle/hook.mjs', import.meta.url, { data: { include } });
  startTelemetry({ ...options, instrumentations });
}

/**
 * Flushes pending spans and stops the SDK. The service calls it from its own shutdown, after its
 * servers have stopped; telemetry installs no signal handlers. It never rejects: a collector that
 * is down must not turn a clean shutdown into a crash, so a failed flush becomes a process warning
 * (code BALLAST_TELEMETRY_FLUSH) on stderr.
 */
export function shutdownTelemetry(): Promise<void> {
  const state = telemetryState();
  // Metrics created lazily (no preload) are left running: Prometheus pulls, so there is nothing to
  // flush, and a test that starts and stops several services in one process keeps its /metrics.
  state.shutdown ??= Promise.all([state.sdk?.shutdown()]).then(
    () => undefined,
    (error: unknown) => {
      const reason = error instanceof Error ? error.message : String(error);
      process.emitWarning(`telemetry flush on shutdown failed: ${reason}`, {
        code: 'BALLAST_TELEMETRY_FLUSH',
      });
    },
  );
  return state.shutdown;
}
