// The inference service: gRPC predictions with dynamic batching, hot swap and load shedding.
// Config, telemetry and stores are wired here; RPC handlers live in server.ts.

import { commonConfig, loadConfig, serviceConfig } from '@ballast/config';
import { InferenceService } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { runMain, runService, serve } from '@ballast/grpc-kit';
import { connectRedis } from '@ballast/queue';
import { createLogger } from '@ballast/telemetry';
import { inferenceService } from './server.js';

runMain(async () => {
  const config = loadConfig({ ...commonConfig, ...serviceConfig('inference') });
  const log = createLogger({ service: 'inference', level: config.BALLAST_LOG_LEVEL });
  const redis = connectRedis(config.BALLAST_REDIS_URL);
  await runService({
    name: 'inference',
    log,
    grpc: {
      host: config.BALLAST_GRPC_HOST,
      port: config.BALLAST_INFERENCE_GRPC_PORT,
      services: [serve(InferenceService, inferenceService())],
      authToken: config.BALLAST_AUTH_TOKEN,
      maxMessageBytes: config.BALLAST_GRPC_MAX_MESSAGE_BYTES,
    },
    http: { host: config.BALLAST_GRPC_HOST, port: config.BALLAST_INFERENCE_HTTP_PORT },
    dependencies: [{ name: 'redis', check: () => redis.ping() }],
    close: [() => redis.disconnect()],
    shutdownGraceMs: config.BALLAST_SHUTDOWN_GRACE_MS,
  });
});
