// The trainer: reproducible TF.js training as BullMQ jobs. It serves no gRPC: its work arrives as
// `training.run` jobs, and its HTTP port serves health and metrics.
import { addrConfig, commonConfig, int, loadConfig, oneOf, serviceConfig, str } from '@ballast/config';
import { FeatureService } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { createClient, runMain, runService } from '@ballast/grpc-kit';
import { BACKEND_PREFERENCES, selectBackend } from '@ballast/ml';
import { connectRedis } from '@ballast/queue';
import { createLogger } from '@ballast/telemetry';
import { trainingWorker } from './worker.js';

runMain(async () => {
  const config = loadConfig({
    ...commonConfig,
    ...serviceConfig('trainer'),
    ...addrConfig('registry'),
    ...addrConfig('feature'),
    ...addrConfig('ingest'),
    BALLAST_TF_BACKEND: oneOf(BACKEND_PREFERENCES).default('auto'),
    /** Price of one core-hour, for each version's cost per 1M predictions. */
    BALLAST_TRAINER_CORE_HOUR_PRICE: str().default('0.05'),
    BALLAST_TRAINER_CURRENCY: str().default('USD'),
    /** A job whose trainer died is taken up again this long after its last lock renewal. */
    BALLAST_TRAINER_LOCK_MS: int({ min: 1000 }).default(60_000),
  });
  const price = Number(config.BALLAST_TRAINER_CORE_HOUR_PRICE);
  if (!(price > 0 && Number.isFinite(price)))
    throw new Error(
      `BALLAST_TRAINER_CORE_HOUR_PRICE: expected a positive number, got ${config.BALLAST_TRAINER_CORE_HOUR_PRICE}`,
    );
  const log = createLogger({ service: 'trainer', level: config.BALLAST_LOG_LEVEL });
  const backend = await selectBackend(config.BALLAST_TF_BACKEND);
  log.info({ backend: backend.backend, tfjs: backend.tfjsVersion }, backend.reason);

  const redis = connectRedis(config.BALLAST_REDIS_URL);
  const client = { deadlineMs: 120_000, authToken: config.BALLAST_AUTH_TOKEN };
  const clients = {
    registry: createClient(RegistryService, { address: config.BALLAST_REGISTRY_ADDR, ...client }),
    feature: createClient(FeatureService, { address: config.BALLAST_FEATURE_ADDR, ...client }),
    ingest: createClient(IngestService, { address: config.BALLAST_INGEST_ADDR, ...client }),
  };
  const worker = trainingWorker({
    connection: redis,
    clients,
    settings: { backend, pricePerCoreHour: price, currency: config.BALLAST_TRAINER_CURRENCY },
    lockDurationMs: config.BALLAST_TRAINER_LOCK_MS,
    onProgress: (jobId, progress) => log.debug({ jobId, ...progress }, 'training progress'),
  });
  worker.on('completed', (job, result) => log.info({ jobId: job.id, ...result }, 'training job done'));
  worker.on('failed', (job, err) => log.warn({ jobId: job?.id, err: err.message }, 'training job failed'));
  await runService({
    name: 'trainer',
    log,
    http: { host: config.BALLAST_GRPC_HOST, port: config.BALLAST_TRAINER_HTTP_PORT },
    dependencies: [{ name: 'redis', check: () => redis.ping() }],
    close: [
      () => worker.close(),
      () => {
        for (const c of Object.values(clients)) c.close();
      },
      () => redis.disconnect(),
    ],
    shutdownGraceMs: config.BALLAST_SHUTDOWN_GRACE_MS,
  });
});
