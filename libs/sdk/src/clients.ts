import { defaultAddr, envPrefix, type GrpcServiceName } from '@ballast/config';
import { FeatureService } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { InferenceService } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { MonitorService } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { type ClientOptions, createClient, type ServiceClient } from '@ballast/grpc-kit';

/**
 * Typed clients for every service, found where `BALLAST_<SERVICE>_ADDR` says (several
 * comma-separated addresses are balanced round robin), with the kit's defaults: a deadline
 * on every bounded call, retries of idempotent calls on UNAVAILABLE, keepalive.
 */
export interface BallastClients {
  ingest: ServiceClient<typeof IngestService>;
  feature: ServiceClient<typeof FeatureService>;
  registry: ServiceClient<typeof RegistryService>;
  inference: ServiceClient<typeof InferenceService>;
  monitor: ServiceClient<typeof MonitorService>;
  close(): void;
}

export function serviceAddress(service: GrpcServiceName, env: NodeJS.ProcessEnv = process.env): string[] {
  const value = env[`${envPrefix(service)}_ADDR`]?.trim();
  return (value ? value.split(',') : [defaultAddr(service)]).map((a) => a.trim()).filter(Boolean);
}

export function connect(
  env: NodeJS.ProcessEnv = process.env,
  options: Omit<ClientOptions, 'address'> = {},
): BallastClients {
  const common = { authToken: env.BALLAST_AUTH_TOKEN || undefined, ...options };
  const clients = {
    ingest: createClient(IngestService, { address: serviceAddress('ingest', env), ...common }),
    feature: createClient(FeatureService, { address: serviceAddress('feature', env), ...common }),
    registry: createClient(RegistryService, { address: serviceAddress('registry', env), ...common }),
    inference: createClient(InferenceService, { address: serviceAddress('inference', env), ...common }),
    monitor: createClient(MonitorService, { address: serviceAddress('monitor', env), ...common }),
  };
  return {
    ...clients,
    close() {
      for (const client of Object.values(clients)) client.close();
    },
  };
}

/** Clients for the length of `fn`, closed after it whatever it does. */
export async function withClients<T>(
  env: NodeJS.ProcessEnv,
  fn: (clients: BallastClients) => Promise<T>,
): Promise<T> {
  const clients = connect(env);
  try {
    return await fn(clients);
  } finally {
    clients.close();
  }
}
