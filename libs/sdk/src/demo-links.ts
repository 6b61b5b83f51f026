import type { ServiceName } from '@ballast/config';
import { traceExportEndpoint } from '@ballast/telemetry';
import { jaegerBase } from './commands-data.js';

/**
 * Jaeger's search for one service's traces. Services export as `ballast-<service>` (the
 * supervisor, compose and k8s all name them so); a bare `trainer` would find nothing.
 */
export function jaegerServiceLink(env: NodeJS.ProcessEnv, service: ServiceName): string {
  return `${jaegerBase(env)}/search?service=ballast-${service}`;
}

/** The demo's closing lines on traces: its own trace and the loop's when spans are exported, else how to export them. */
export function demoTraceLines(env: NodeJS.ProcessEnv, link: string | undefined): string[] {
  if (!traceExportEndpoint(env) || !link)
    return [
      'traces:    set OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 for `npm start` and the demo, and run Jaeger, to see the loop as traces (README, "Traces and metrics")',
    ];
  return [
    // The demo's own span (the CLI's) is the root of its trace; its first training job carries it.
    `trace:     ${link} (the demo, its calls and its first training job)`,
    `traces:    ${jaegerServiceLink(env, 'trainer')} (Jaeger; the loop's spans link commit, training, promotion and serving)`,
  ];
}
