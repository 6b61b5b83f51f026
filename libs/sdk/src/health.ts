import { DEFAULT_PORTS, envPrefix, isGrpcService, type ServiceName } from '@ballast/config';
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from '@ballast/contracts/grpc/health/v1/health_pb.js';
import { createClient, RpcError } from '@ballast/grpc-kit';
import { status as grpcStatus } from '@grpc/grpc-js';
import { SERVICE_DESCRIPTORS } from './services.js';

export interface ServiceEndpoints {
  grpc: string | undefined;
  http: string;
}

/** Where a service listens on this machine: its port variables when set, else the design's ports. */
export function localEndpoints(service: ServiceName, env: NodeJS.ProcessEnv = process.env): ServiceEndpoints {
  const prefix = envPrefix(service);
  const defaults = DEFAULT_PORTS[service];
  const grpcPort = env[`${prefix}_GRPC_PORT`] || defaults.grpc;
  const httpPort = env[`${prefix}_HTTP_PORT`] || defaults.http;
  return {
    grpc: defaults.grpc === null ? undefined : `127.0.0.1:${grpcPort}`,
    http: `http://127.0.0.1:${httpPort}`,
  };
}

/**
 * `busy`: the service took the connection but did not answer within the timeout (a long
 * commit holding its event loop looks like this); `down`: nothing took the connection.
 */
export type Readiness = 'ready' | 'not ready' | 'busy' | 'down';

export interface Probed {
  readiness: Readiness;
  /** What was seen, e.g. "not answering within 2s (busy?)" or "connection refused (down)". */
  detail: string;
}

/** Whether a service is ready (see probeService). */
export async function probe(
  service: ServiceName,
  endpoints: ServiceEndpoints,
  timeoutMs = 1_000,
): Promise<Readiness> {
  return (await probeService(service, endpoints, timeoutMs)).readiness;
}

const busy = (timeoutMs: number): Probed => ({
  readiness: 'busy',
  detail: `not answering within ${timeoutMs / 1000}s (busy?)`,
});

/** A failed connection as what it was: refused (down), or another transport failure. */
const down = (message: string): Probed => ({
  readiness: 'down',
  detail: /ECONNREFUSED/.test(message) ? 'connection refused (down)' : `${message} (down)`,
});

/**
 * Whether a service is ready, and what was seen: its gRPC health entry (the way an
 * orchestrator probes it), or /readyz for the trainer, which serves no gRPC. A deadline that
 * passes is `busy`, not `down`: the service is there but not answering in time.
 */
export async function probeService(
  service: ServiceName,
  endpoints: ServiceEndpoints,
  timeoutMs = 1_000,
): Promise<Probed> {
  if (isGrpcService(service) && endpoints.grpc) {
    const health = createClient(Health, { address: endpoints.grpc, deadlineMs: timeoutMs, retry: false });
    try {
      const { status } = await health.check({ service: SERVICE_DESCRIPTORS[service].typeName });
      return status === ServingStatus.SERVING
        ? { readiness: 'ready', detail: 'serving' }
        : { readiness: 'not ready', detail: `health: ${ServingStatus[status] ?? status}` };
    } catch (err) {
      if (err instanceof RpcError && err.code === grpcStatus.DEADLINE_EXCEEDED) return busy(timeoutMs);
      return down(err instanceof RpcError ? err.details : String(err));
    } finally {
      health.close();
    }
  }
  try {
    const response = await fetch(`${endpoints.http}/readyz`, { signal: AbortSignal.timeout(timeoutMs) });
    return response.ok
      ? { readiness: 'ready', detail: 'ready' }
      : { readiness: 'not ready', detail: `/readyz: HTTP ${response.status}` };
  } catch (err) {
    if (err instanceof Error && err.name === 'TimeoutError') return busy(timeoutMs);
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
    return down(
      cause instanceof Error
        ? `${(cause as NodeJS.ErrnoException).code ?? ''} ${cause.message}`.trim()
        : String(cause),
    );
  }
}
