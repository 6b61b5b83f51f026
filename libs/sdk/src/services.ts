import { type GrpcServiceName, SERVICES, type ServiceName } from '@ballast/config';
import { FeatureService } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { InferenceService } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { MonitorService } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';

/** Each gRPC service's descriptor: its full name is what health reports readiness under. */
export const SERVICE_DESCRIPTORS = {
  ingest: IngestService,
  feature: FeatureService,
  registry: RegistryService,
  inference: InferenceService,
  monitor: MonitorService,
} as const satisfies Record<GrpcServiceName, { typeName: string }>;

export { SERVICES, type ServiceName };
