// The feature service: versioned feature views, online and offline stores, training sets.
// Config, telemetry and stores are wired here; RPC handlers live in server.ts.

import { commonConfig, loadConfig, serviceConfig } from '@ballast/config';
import { FeatureService } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { runMain, runService, serve } from '@ballast/grpc-kit';
import { connectRedis } from '@ballast/queue';
import { openServiceStore } from '@ballast/storage';
import { createLogger } from '@ballast/telemetry';
import { migrations } from './migrations.js';
import { featureService } from './server.js';

runMain(async () => {
  const config = loadConfig({ ...commonConfig, ...serviceConfig('feature') });
  const log = createLogger({ service: 'feature', level: config.BALLAST_LOG_LEVEL });
  const redis = connectRedis(config.BALLAST_REDIS_URL);
  const store = openServiceStore({
    url: config.BALLAST_DATABASE_URL,
    dataDir: config.BALLAST_DATA_DIR,
    schema: 'feature',
    migrations,
  });
  await runService({
    name: 'feature',
    log,
    grpc: {
      host: config.BALLAST_GRPC_HOST,
      port: config.BALLAST_FEATURE_GRPC_PORT,
      services: [serve(FeatureService, featureService(store))],
      authToken: config.BALLAST_AUTH_TOKEN,
      maxMessageBytes: config.BALLAST_GRPC_MAX_MESSAGE_BYTES,
    },
    http: { host: config.BALLAST_GRPC_HOST, port: config.BALLAST_FEATURE_HTTP_PORT },
    dependencies: [
      { name: 'redis', check: () => redis.ping() },
      { name: 'database', check: () => store.ping() },
    ],
    prepare: () => store.migrate(),
    close: [() => redis.disconnect(), () => store.close()],
    shutdownGraceMs: config.BALLAST_SHUTDOWN_GRACE_MS,
  });
});
