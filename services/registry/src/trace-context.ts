import { context, isSpanContextValid, trace } from '@opentelemetry/api';

/**
 * The W3C traceparent of the active span (inside an RPC: the server span of the call), or ''
 * when there is none. Stored with what the call created, so that work on it in another trace
 * can link back to the call that made it.
 */
export function activeTraceparent(): string {
  const span = trace.getSpanContext(context.active());
  if (!span || !isSpanContextValid(span)) return '';
  return `00-${span.traceId}-${span.spanId}-${(span.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}
