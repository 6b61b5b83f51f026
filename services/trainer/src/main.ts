// The trainer: reproducible TF.js training as BullMQ jobs. It serves no gRPC: its work arrives as
// `training.run` jobs, and its HTTP port serves health and metrics.
import { commonConfig, loadConfig, serviceConfig } from '@ballast/config';
import { runMain, runService } from '@ballast/grpc-kit';
import { connectRedis } from '@ballast/queue';
import { createLogger } from '@ballast/telemetry';

runMain(async () => {
  const config = loadConfig({ ...commonConfig, ...serviceConfig('trainer') });
  const log = createLogger({ service: 'trainer', level: config.BALLAST_LOG_LEVEL });
  const redis = connectRedis(config.BALLAST_REDIS_URL);
  await runService({
    name: 'trainer',
    log,
    http: { host: config.BALLAST_GRPC_HOST, port: config.BALLAST_TRAINER_HTTP_PORT },
    dependencies: [{ name: 'redis', check: () => redis.ping() }],
    close: [() => redis.disconnect()],
    shutdownGraceMs: config.BALLAST_SHUTDOWN_GRACE_MS,
  });
});
