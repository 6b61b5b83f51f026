import { context, isSpanContextValid, type SpanContext, TraceFlags, trace } from '@opentelemetry/api';

/**
 * W3C traceparents kept with what a call created (a dataset version, a deployment), so work on
 * it later, in another trace, can link back to the call that made it.
 */

/** The W3C traceparent of the active span (inside an RPC: the call's server span), or ''. */
export function activeTraceparent(): string {
  const span = trace.getSpanContext(context.active());
  if (!span || !isSpanContextValid(span)) return '';
  return `00-${span.traceId}-${span.spanId}-${(span.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * The span a W3C traceparent names (version 00), as a remote span context to link to; undefined
 * for an empty or malformed value, or the all-zero ids W3C declares invalid.
 */
export function spanContextOf(traceparent: string): SpanContext | undefined {
  const match = TRACEPARENT.exec(traceparent);
  if (!match) return undefined;
  const [, traceId = '', spanId = '', flags = '00'] = match;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return {
    traceId,
    spanId,
    traceFlags: Number.parseInt(flags, 16) & TraceFlags.SAMPLED,
    isRemote: true,
  };
}
