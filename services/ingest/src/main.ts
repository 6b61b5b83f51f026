// The ingest service: schema-validated, idempotent, versioned data intake.
// Config, telemetry and stores are wired here; RPC handlers live in server.ts.

import { commonConfig, int, loadConfig, serviceConfig, str } from '@ballast/config';
import { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { runMain, runService, serve } from '@ballast/grpc-kit';
import { connectRedis, createQueue, QueueNames } from '@ballast/queue';
import { openServiceStore } from '@ballast/storage';
import { createLogger } from '@ballast/telemetry';
import { migrations } from './migrations.js';
import { DEFAULT_LIMITS, ingestService } from './server.js';

runMain(async () => {
  const config = loadConfig({
    ...commonConfig,
    ...serviceConfig('ingest'),
    /** Records per batch; a larger batch is refused with RESOURCE_EXHAUSTED naming this limit. */
    BALLAST_INGEST_MAX_BATCH_RECORDS: int({ min: 1, max: 1_000_000 }).default(DEFAULT_LIMITS.maxBatchRecords),
    /** The database schema (PGlite: directory) ingest owns; tests give each run its own. */
    BALLAST_INGEST_DB_SCHEMA: str().default('ingest'),
  });
  const log = createLogger({ service: 'ingest', level: config.BALLAST_LOG_LEVEL });
  const redis = connectRedis(config.BALLAST_REDIS_URL);
  const materialize = createQueue(QueueNames.featuresMaterialize, { connection: redis });
  const store = openServiceStore({
    url: config.BALLAST_DATABASE_URL,
    dataDir: config.BALLAST_DATA_DIR,
    schema: config.BALLAST_INGEST_DB_SCHEMA,
    migrations,
  });
  const service = ingestService({
    db: () => store.sql,
    // The job id makes a repeated commit of the same version enqueue it once.
    enqueue: (job) =>
      materialize.add('materialize', job, { jobId: `${job.datasetName}.${job.datasetVersion}` }),
    limits: { maxBatchRecords: config.BALLAST_INGEST_MAX_BATCH_RECORDS },
    log,
  });
  await runService({
    name: 'ingest',
    log,
    grpc: {
      host: config.BALLAST_GRPC_HOST,
      port: config.BALLAST_INGEST_GRPC_PORT,
      services: [serve(IngestService, service)],
      authToken: config.BALLAST_AUTH_TOKEN,
      maxMessageBytes: config.BALLAST_GRPC_MAX_MESSAGE_BYTES,
    },
    http: { host: config.BALLAST_GRPC_HOST, port: config.BALLAST_INGEST_HTTP_PORT },
    dependencies: [
      { name: 'redis', check: () => redis.ping() },
      { name: 'database', check: () => store.ping() },
    ],
    prepare: () => store.migrate(),
    close: [() => materialize.close(), () => redis.disconnect(), () => store.close()],
    shutdownGraceMs: config.BALLAST_SHUTDOWN_GRACE_MS,
  });
});
