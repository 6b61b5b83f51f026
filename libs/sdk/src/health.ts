import { DEFAULT_PORTS, envPrefix, isGrpcService, type ServiceName } from '@ballast/config';
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from '@ballast/contracts/grpc/health/v1/health_pb.js';
import { createClient } from '@ballast/grpc-kit';
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

export type Readiness = 'ready' | 'not ready' | 'down';

/**
 * Whether a service is ready: its gRPC health entry (the way an orchestrator probes it),
 * or /readyz for the trainer, which serves no gRPC.
 */
export async function probe(
  service: ServiceName,
  endpoints: ServiceEndpoints,
  timeoutMs = 1_000,
): Promise<Readiness> {
  if (isGrpcService(service) && endpoints.grpc) {
    const health = createClient(Health, { address: endpoints.grpc, deadlineMs: timeoutMs, retry: false });
    try {
      const { status } = await health.check({ service: SERVICE_DESCRIPTORS[service].typeName });
      return status === ServingStatus.SERVING ? 'ready' : 'not ready';
    } catch {
      return 'down';
    } finally {
      health.close();
    }
  }
  try {
    const response = await fetch(`${endpoints.http}/readyz`, { signal: AbortSignal.timeout(timeoutMs) });
    return response.ok ? 'ready' : 'not ready';
  } catch {
    return 'down';
  }
}
