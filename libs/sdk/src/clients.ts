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

/**
 * Calls the proto does not mark idempotent whose server semantics still make a retry on
 * UNAVAILABLE safe (a replica killed mid-call, round robin moving to the next one). The kit
 * retries these as it retries the proto's idempotent ones, within the call's deadline.
 * Left out on purpose: CreateModel (a retry after a create that landed answers
 * ALREADY_EXISTS, which the caller cannot tell from someone else's model), CreateDataset
 * (the same), CreateModelVersion and UploadArtifact (a retry would number or store again).
 */
export const RETRY_SAFE: Readonly<Record<'ingest' | 'monitor', readonly string[]>> = {
  ingest: [
    // One batch, all or nothing; a batch applied before the answer was lost is applied again
    // as duplicates, dropped by event id (ingest.proto, Schema.event_id_field; quarantined
    // records by their digest). The repeat's answer counts those records as duplicates.
    'IngestBatch',
    // A commit with nothing new since the last returns the same version (the same records
    // give the same content hash), and one while a commit runs joins it; materialization is
    // enqueued under the version's id, so a repeat does not enqueue it twice.
    'CommitVersion',
  ],
  // Only when every actual carries its time (see recordActuals below): monitor remembers
  // each actual by model, entity and time and counts a repeat once (actuals_seen).
  monitor: ['RecordActuals'],
};

export function connect(
  env: NodeJS.ProcessEnv = process.env,
  options: Omit<ClientOptions, 'address'> = {},
): BallastClients {
  const common = { authToken: env.BALLAST_AUTH_TOKEN || undefined, ...options };
  const extra = (service: keyof typeof RETRY_SAFE) => ({
    idempotentMethods: [...(options.idempotentMethods ?? []), ...RETRY_SAFE[service]],
  });
  const monitorAddress = serviceAddress('monitor', env);
  const monitor = createClient(MonitorService, { address: monitorAddress, ...common, ...extra('monitor') });
  // An actual without a time is stamped by the monitor on arrival: a repeat would arrive
  // later, be a new actual and join its prediction twice. Those calls go through a client
  // that does not retry RecordActuals (its channel connects only once used).
  const monitorOnce = createClient(MonitorService, { address: monitorAddress, ...common });
  const clients = {
    ingest: createClient(IngestService, {
      address: serviceAddress('ingest', env),
      ...common,
      ...extra('ingest'),
    }),
    feature: createClient(FeatureService, { address: serviceAddress('feature', env), ...common }),
    registry: createClient(RegistryService, { address: serviceAddress('registry', env), ...common }),
    inference: createClient(InferenceService, { address: serviceAddress('inference', env), ...common }),
    monitor: {
      ...monitor,
      recordActuals: (request, callOptions) =>
        (request.actuals ?? []).every((a) => a.time !== undefined)
          ? monitor.recordActuals(request, callOptions)
          : monitorOnce.recordActuals(request, callOptions),
    } satisfies ServiceClient<typeof MonitorService>,
  };
  return {
    ...clients,
    close() {
      for (const client of Object.values(clients)) client.close();
      monitorOnce.close();
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
