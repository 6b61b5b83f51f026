import type { Context } from '@opentelemetry/api';
import { SpanKind } from '@opentelemetry/api';
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace-base';

/**
 * What Ballast changes about spans before they are exported: unless asked for, no spans of
 * housekeeping (health probes, reflection, BullMQ's own polling).
 */

const RPC_SERVICE = 'rpc.service';
const BULLMQ_OPERATION = 'bullmq.queue.operation';

/**
 * The gRPC codes that mark a SERVER span as an error (UNKNOWN, DEADLINE_EXCEEDED,
 * UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS): the server failed. Every other code is
 * the caller's doing (INVALID_ARGUMENT, NOT_FOUND, ...) and leaves the status unset.
 * https://opentelemetry.io/docs/specs/semconv/rpc/grpc/#grpc-status (@ballast/grpc-kit's
 * server spans apply it; client spans are ERROR on every code but OK.)
 */
export const GRPC_SERVER_ERROR_CODES: ReadonlySet<number> = new Set([2, 4, 12, 13, 14, 15]);

/** gRPC services whose calls are probes and tooling, not work. */
export const HOUSEKEEPING_RPC_SERVICES: ReadonlySet<string> = new Set([
  'grpc.health.v1.Health',
  'grpc.reflection.v1.ServerReflection',
  'grpc.reflection.v1alpha.ServerReflection',
]);

/**
 * BullMQ operations (bullmq.queue.operation) that a queue or worker runs on its own: fetching
 * the next job, lock renewal, the stalled-job checker, closing. Jobs' own spans (add, process,
 * complete, fail, progress) are not among them.
 */
export const HOUSEKEEPING_QUEUE_OPERATIONS: ReadonlySet<string> = new Set([
  'getNextJob',
  'extendLocks',
  'startStalledCheckTimer',
  'moveStalledJobsToWait',
  'trimEvents',
  'close',
]);

/** Whether a span is housekeeping: a health or reflection RPC, or BullMQ's own polling. */
export function isHousekeepingSpan(span: ReadableSpan): boolean {
  const service = span.attributes[RPC_SERVICE];
  if (typeof service === 'string' && HOUSEKEEPING_RPC_SERVICES.has(service)) return true;
  const operation = span.attributes[BULLMQ_OPERATION];
  return (
    span.kind === SpanKind.INTERNAL &&
    typeof operation === 'string' &&
    HOUSEKEEPING_QUEUE_OPERATIONS.has(operation)
  );
}

/** BALLAST_TRACE_HOUSEKEEPING=true traces housekeeping too; anything else (or unset) drops it. */
export function traceHousekeeping(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.BALLAST_TRACE_HOUSEKEEPING?.trim().toLowerCase() === 'true';
}

/** Passes every span to `next` except housekeeping ones, which are never exported. */
export class DropHousekeepingProcessor implements SpanProcessor {
  constructor(private readonly next: SpanProcessor) {}

  onStart(span: Span, parentContext: Context): void {
    this.next.onStart(span, parentContext);
  }

  onEnding(span: Span): void {
    this.next.onEnding?.(span);
  }

  onEnd(span: ReadableSpan): void {
    if (!isHousekeepingSpan(span)) this.next.onEnd(span);
  }

  forceFlush(): Promise<void> {
    return this.next.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.next.shutdown();
  }
}

/**
 * The processors every Ballast process runs: `exporting`, behind the housekeeping filter unless
 * BALLAST_TRACE_HOUSEKEEPING=true.
 */
export function ballastSpanProcessors(
  exporting: SpanProcessor,
  env: NodeJS.ProcessEnv = process.env,
): SpanProcessor[] {
  return [traceHousekeeping(env) ? exporting : new DropHousekeepingProcessor(exporting)];
}
