import { type Context, ROOT_CONTEXT } from '@opentelemetry/api';
import type { Telemetry } from 'bullmq';
import { BullMQOtel } from 'bullmq-otel';

let shared: Telemetry<Context> | undefined;

/**
 * The BullMQ telemetry every queue and worker uses unless told otherwise. Created on first
 * use, not at import, so that a service's telemetry setup (run first in main.ts) has
 * registered its meter provider before bullmq-otel asks for a meter; tracers are proxies
 * and would pick up a later provider anyway.
 */
export function queueTelemetry(): Telemetry<Context> {
  shared ??= createQueueTelemetry();
  return shared;
}

export function createQueueTelemetry(): Telemetry<Context> {
  const otel = new BullMQOtel({
    tracerName: '@ballast/queue',
    meterName: '@ballast/queue',
    enableMetrics: true,
  });
  const manager = otel.contextManager;
  const fromMetadata = manager.fromMetadata.bind(manager);
  Object.assign(manager, {
    // bullmq-otel 2.0 has no root(): without it BullMQ runs the worker's stalled-job checker
    // in the context of whatever call created the worker, and every check joins that trace.
    root: (): Context => ROOT_CONTEXT,
    // Trace metadata comes back from Redis; a corrupt value should start a fresh trace, not
    // throw before the job's span exists and leave the job unprocessed.
    fromMetadata: (active: Context, metadata: string): Context => {
      try {
        return fromMetadata(active, metadata);
      } catch {
        return active;
      }
    },
  });
  return otel;
}
