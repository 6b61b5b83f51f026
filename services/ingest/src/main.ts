// The ingest service: schema-validated, idempotent, versioned data intake.
// Config, telemetry and stores are wired here; RPC handlers live in server.ts.

import { commonConfig, int, loadConfig, serviceConfig, str } from '@ballast/config';
import { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { runMain, runService, serve } from '@ballast/grpc-kit';
import { connectRedis, createQueue, QueueNames } from '@ballast/queue';
import { openServiceStore } from '@ballast/storage';
import { createLogger } from '@ballast/telemetry';
import { Datasets } from './datasets.js';
import { HashOrderSort } from './hash-order-sort.js';
import { migrations } from './migrations.js';
import { DEFAULT_LIMITS, ingestService } from './server.js';
import { IngestStore } from './store.js';
import { type Enqueue, Versions } from './versions.js';

/** How often announcements left by a failed enqueue (Redis down mid-commit) are retried. */
const ANNOUNCE_RETRY_MS = 30_000;

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
  // The job id makes a repeated commit (or announcement) of the same version enqueue it once.
  const enqueue: Enqueue = (job) =>
    materialize.add('materialize', job, { jobId: `${job.datasetName}.${job.datasetVersion}` });
  const ingestStore = new IngestStore(() => store.sql);
  const announcer = new Versions(ingestStore, new Datasets(ingestStore), enqueue);
  const announcePending = async () => {
    const queued = await announcer.announcePending();
    if (queued > 0) log.info({ queued }, `queued ${queued} materialize job(s) a commit had not seen queued`);
  };
  let retryTimer: NodeJS.Timeout | undefined;
  const service = ingestService({
    db: () => store.sql,
    enqueue,
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
    prepare: async () => {
      const swept = await HashOrderSort.sweep();
      if (swept.length > 0)
        log.info({ swept }, `removed ${swept.length} sort folder(s) of commits whose process died`);
      await store.migrate();
      // Versions committed by a process that died before their job was queued: before serving.
      await announcePending();
      retryTimer ??= setInterval(
        () => announcePending().catch((err) => log.warn({ err }, 'queueing pending announcements failed')),
        ANNOUNCE_RETRY_MS,
      ).unref();
    },
    close: [
      () => clearInterval(retryTimer),
      () => materialize.close(),
      () => redis.disconnect(),
      () => store.close(),
    ],
    shutdownGraceMs: config.BALLAST_SHUTDOWN_GRACE_MS,
  });
});
