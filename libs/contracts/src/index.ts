// Generated contracts, one namespace per proto package. Deep imports work too:
// `import { Health } from '@ballast/contracts/grpc/health/v1/health_pb.js'`.
export * as featureV1 from './gen/ballast/feature/v1/feature_pb.js';
export * as inferenceV1 from './gen/ballast/inference/v1/inference_pb.js';
export * as ingestV1 from './gen/ballast/ingest/v1/ingest_pb.js';
export * as monitorV1 from './gen/ballast/monitor/v1/monitor_pb.js';
export * as registryV1 from './gen/ballast/registry/v1/registry_pb.js';
export * as testingV1 from './gen/ballast/testing/v1/echo_pb.js';
export * as trainerV1 from './gen/ballast/trainer/v1/trainer_pb.js';
export * as healthV1 from './gen/grpc/health/v1/health_pb.js';
