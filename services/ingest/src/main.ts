// The ingest service: schema-validated, idempotent, versioned data intake.
// Config, telemetry and stores are wired here; RPC handlers live in server.ts.

import { commonConfig, loadConfig, serviceConfig } from '@ballast/config';
import { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { runMain, runService, serve } from '@ballast/grpc-kit';
import { connectRedis } from '@ballast/queue';
import { openServiceStore } from '@ballast/storage';
import { createLogger } from '@ballast/telemetry';
import { migrations } from './migrations.js';
import { ingestService } from './server.js';

runMain(async () => {
  const config = loadConfig({ ...commonConfig, ...serviceConfig('ingest') });
  const log = createLogger({ service: 'ingest', level: config.BALLAST_LOG_LEVEL });
  const redis = connectRedis(config.BALLAST_REDIS_URL);
  const store = openServiceStore({
    url: config.BALLAST_DATABASE_URL,
    dataDir: config.BALLAST_DATA_DIR,
    schema: 'ingest',
    migrations,
  });
  await runService({
    name: 'ingest',
    log,
    grpc: {
      host: config.BALLAST_GRPC_HOST,
      port: config.BALLAST_INGEST_GRPC_PORT,
      services: [serve(IngestService, ingestService(store))],
      authToken: config.BALLAST_AUTH_TOKEN,
      maxMessageBytes: config.BALLAST_GRPC_MAX_MESSAGE_BYTES,
    },
    http: { host: config.BALLAST_GRPC_HOST, port: config.BALLAST_INGEST_HTTP_PORT },
    dependencies: [
      { name: 'redis', check: () => redis.ping() },
      { name: 'database', check: () => store.ping() },
    ],
    prepare: () => store.migrate(),
    close: [() => redis.disconnect(), () => store.close()],
    shutdownGraceMs: config.BALLAST_SHUTDOWN_GRACE_MS,
  });
});
