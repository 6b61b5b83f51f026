// The monitor service: drift, delayed-label error, SLOs, alerts and retraining triggers.
// Config, telemetry and stores are wired here; RPC handlers live in server.ts.

import {
  addrConfig,
  bool,
  commonConfig,
  durationMs,
  int,
  loadConfig,
  serviceConfig,
  str,
} from '@ballast/config';
import { FeatureService } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { MonitorService } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { createClient, runMain, runService, serve } from '@ballast/grpc-kit';
import { connectRedis, DEFAULT_PREFIX } from '@ballast/queue';
import { openServiceStore } from '@ballast/storage';
import { createLogger } from '@ballast/telemetry';
import { recordActuals } from './actuals.js';
import { dashboardRoutes } from './dashboard.js';
import { IngestActuals } from './ingest-actuals.js';
import { lineageBaselines } from './lineage-baseline.js';
import { migrations } from './migrations.js';
import { createMonitor } from './monitor.js';
import { OperationsScraper, parseTargets } from './operations.js';
import { registryLineage } from './retrain.js';
import { DEFAULT_SETTINGS } from './settings.js';

runMain(async () => {
  const d = DEFAULT_SETTINGS;
  const config = loadConfig({
    ...commonConfig,
    ...serviceConfig('monitor'),
    ...addrConfig('registry'),
    ...addrConfig('feature'),
    ...addrConfig('ingest'),
    /** How often datasets named as actuals sources are checked for a new committed version. */
    BALLAST_MONITOR_ACTUALS_POLL_MS: durationMs().default(10_000),
    /** Window length for models whose baseline sets none. */
    BALLAST_MONITOR_WINDOW_MS: durationMs().default(d.windowMs),
    /** How long after a prediction an actual may still join it. */
    BALLAST_MONITOR_JOIN_WINDOW_MS: durationMs().default(d.joinWindowMs),
    /** Store the default drift rule (share of drifted features >= threshold, every segment, retrain). */
    BALLAST_MONITOR_DEFAULT_RULE: bool().default(true),
    BALLAST_MONITOR_DEFAULT_RULE_THRESHOLD: str().default('0.5'),
    /** Windows in a row the default rule's condition must hold before it fires. */
    BALLAST_MONITOR_DEFAULT_RULE_WINDOWS: int({ min: 1, max: 1000 }).default(2),
    BALLAST_MONITOR_RETRAIN: bool().default(true),
    BALLAST_MONITOR_RETRAIN_COOLDOWN_MS: durationMs().default(d.retrain.cooldownMs),
    BALLAST_MONITOR_RETRAIN_MAX: int({ min: 1 }).default(d.retrain.maxPerWindow),
    BALLAST_MONITOR_RETRAIN_RATE_WINDOW_MS: durationMs().default(d.retrain.rateWindowMs),
    BALLAST_MONITOR_WEBHOOK_ATTEMPTS: int({ min: 1, max: 20 }).default(d.webhook.attempts),
    BALLAST_MONITOR_MIN_ERROR_COUNT: int({ min: 1 }).default(d.minErrorCount),
    BALLAST_MONITOR_WORKER_CONCURRENCY: int({ min: 1, max: 64 }).default(d.workerConcurrency),
    /** Window statistics and error are kept this long; logged predictions as long as actuals may join them. */
    BALLAST_MONITOR_WINDOW_RETENTION_MS: durationMs().default(d.windowRetentionMs),
    BALLAST_MONITOR_PRUNE_INTERVAL_MS: durationMs().default(3_600_000),
    /** Least time between two alert evaluations of one model while predictions keep arriving. */
    BALLAST_MONITOR_EVALUATE_INTERVAL_MS: durationMs().default(1_000),
    /** `name=http://host:port/metrics,...`; default: every Ballast service on its DESIGN.md port. */
    BALLAST_MONITOR_SCRAPE_TARGETS: str().optional(),
    BALLAST_MONITOR_SCRAPE_INTERVAL_MS: durationMs().default(15_000),
    /** How soon WatchAlerts sees alert changes made by another monitor replica. */
    BALLAST_MONITOR_WATCH_POLL_MS: durationMs().default(d.watchPollMs),
    /** Redis key prefix of the queues monitor reads and writes (tests; suites sharing one Redis). */
    BALLAST_MONITOR_QUEUE_PREFIX: str().default(DEFAULT_PREFIX),
  });
  const log = createLogger({ service: 'monitor', level: config.BALLAST_LOG_LEVEL });
  const threshold = Number(config.BALLAST_MONITOR_DEFAULT_RULE_THRESHOLD);
  if (!(threshold > 0 && threshold <= 1))
    throw new Error('BALLAST_MONITOR_DEFAULT_RULE_THRESHOLD must be a share of features in (0, 1]');
  const redis = connectRedis(config.BALLAST_REDIS_URL);
  const store = openServiceStore({
    url: config.BALLAST_DATABASE_URL,
    dataDir: config.BALLAST_DATA_DIR,
    schema: 'monitor',
    migrations,
  });
  const clientOptions = {
    authToken: config.BALLAST_AUTH_TOKEN,
    maxMessageBytes: config.BALLAST_GRPC_MAX_MESSAGE_BYTES,
  };
  const registry = createClient(RegistryService, { address: config.BALLAST_REGISTRY_ADDR, ...clientOptions });
  const feature = createClient(FeatureService, { address: config.BALLAST_FEATURE_ADDR, ...clientOptions });
  const sql = () => store.sql;
  const scraper = new OperationsScraper(parseTargets(config.BALLAST_MONITOR_SCRAPE_TARGETS), {
    intervalMs: config.BALLAST_MONITOR_SCRAPE_INTERVAL_MS,
  });
  // The worker starts once the schema is migrated (prepare), never before.
  let monitor: ReturnType<typeof createMonitor> | undefined;
  const monitorLazy = () => {
    if (!monitor)
      monitor = createMonitor({
        sql,
        connection: redis,
        prefix: config.BALLAST_MONITOR_QUEUE_PREFIX,
        settings: {
          windowMs: config.BALLAST_MONITOR_WINDOW_MS,
          joinWindowMs: config.BALLAST_MONITOR_JOIN_WINDOW_MS,
          defaultRule: config.BALLAST_MONITOR_DEFAULT_RULE
            ? {
                windows: config.BALLAST_MONITOR_DEFAULT_RULE_WINDOWS,
                threshold,
              }
            : undefined,
          retrain: {
            enabled: config.BALLAST_MONITOR_RETRAIN,
            cooldownMs: config.BALLAST_MONITOR_RETRAIN_COOLDOWN_MS,
            maxPerWindow: config.BALLAST_MONITOR_RETRAIN_MAX,
            rateWindowMs: config.BALLAST_MONITOR_RETRAIN_RATE_WINDOW_MS,
          },
          webhook: { attempts: config.BALLAST_MONITOR_WEBHOOK_ATTEMPTS, backoffMs: 500 },
          minErrorCount: config.BALLAST_MONITOR_MIN_ERROR_COUNT,
          workerConcurrency: config.BALLAST_MONITOR_WORKER_CONCURRENCY,
          evaluateIntervalMs: config.BALLAST_MONITOR_EVALUATE_INTERVAL_MS,
          windowRetentionMs: config.BALLAST_MONITOR_WINDOW_RETENTION_MS,
          pruneIntervalMs: config.BALLAST_MONITOR_PRUNE_INTERVAL_MS,
          watchPollMs: config.BALLAST_MONITOR_WATCH_POLL_MS,
        },
        resolveBaseline: lineageBaselines(registry, feature, { windowMs: config.BALLAST_MONITOR_WINDOW_MS }),
        lineage: registryLineage(registry),
        onError: (err) => log.warn({ err }, 'alert evaluation failed'),
        autorun: false,
        operations: scraper,
      });
    return monitor;
  };
  const service = monitorLazy().service;
  const ingest = createClient(IngestService, { address: config.BALLAST_INGEST_ADDR, ...clientOptions });
  const ingestActuals = new IngestActuals({
    sql,
    ingest,
    record: (model, rows) => recordActuals(monitorLazy().deps, model, rows),
    intervalMs: config.BALLAST_MONITOR_ACTUALS_POLL_MS,
    onError: (err) => log.warn({ err }, 'reading actuals from ingest failed; retrying at the next poll'),
  });
  await runService({
    name: 'monitor',
    log,
    grpc: {
      host: config.BALLAST_GRPC_HOST,
      port: config.BALLAST_MONITOR_GRPC_PORT,
      services: [serve(MonitorService, service)],
      authToken: config.BALLAST_AUTH_TOKEN,
      maxMessageBytes: config.BALLAST_GRPC_MAX_MESSAGE_BYTES,
    },
    http: {
      host: config.BALLAST_GRPC_HOST,
      port: config.BALLAST_MONITOR_HTTP_PORT,
      routes: dashboardRoutes({ sql, registry, operations: scraper }),
    },
    dependencies: [
      { name: 'redis', check: () => redis.ping() },
      { name: 'database', check: () => store.ping() },
    ],
    prepare: async () => {
      await store.migrate();
      const worker = monitorLazy().worker;
      if (worker && !worker.isRunning())
        void worker.run().catch((err) => log.error({ err }, 'worker stopped'));
      scraper.start();
      ingestActuals.start();
    },
    close: [
      () => scraper.stop(),
      () => ingestActuals.stop(),
      () => ingest.close(),
      () => monitor?.close(),
      () => registry.close(),
      () => feature.close(),
      () => redis.disconnect(),
      () => store.close(),
    ],
    shutdownGraceMs: config.BALLAST_SHUTDOWN_GRACE_MS,
  });
});
