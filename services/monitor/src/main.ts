// The monitor service: drift, delayed-label error, SLOs, alerts and retraining triggers.
// Config, telemetry and stores are wired here; RPC handlers live in server.ts.

import { commonConfig, loadConfig, serviceConfig } from '@ballast/config';
import { MonitorService } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { runMain, runService, serve } from '@ballast/grpc-kit';
import { connectRedis } from '@ballast/queue';
import { openServiceStore } from '@ballast/storage';
import { createLogger } from '@ballast/telemetry';
import { migrations } from './migrations.js';
import { monitorService } from './server.js';

runMain(async () => {
  const config = loadConfig({ ...commonConfig, ...serviceConfig('monitor') });
  const log = createLogger({ service: 'monitor', level: config.BALLAST_LOG_LEVEL });
  const redis = connectRedis(config.BALLAST_REDIS_URL);
  const store = openServiceStore({
    url: config.BALLAST_DATABASE_URL,
    dataDir: config.BALLAST_DATA_DIR,
    schema: 'monitor',
    migrations,
  });
  await runService({
    name: 'monitor',
    log,
    grpc: {
      host: config.BALLAST_GRPC_HOST,
      port: config.BALLAST_MONITOR_GRPC_PORT,
      services: [serve(MonitorService, monitorService(store))],
      authToken: config.BALLAST_AUTH_TOKEN,
      maxMessageBytes: config.BALLAST_GRPC_MAX_MESSAGE_BYTES,
    },
    http: { host: config.BALLAST_GRPC_HOST, port: config.BALLAST_MONITOR_HTTP_PORT },
    dependencies: [
      { name: 'redis', check: () => redis.ping() },
      { name: 'database', check: () => store.ping() },
    ],
    prepare: () => store.migrate(),
    close: [() => redis.disconnect(), () => store.close()],
    shutdownGraceMs: config.BALLAST_SHUTDOWN_GRACE_MS,
  });
});
