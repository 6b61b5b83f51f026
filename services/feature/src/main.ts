// The feature service: versioned feature views, online and offline stores, training sets.
// Config, telemetry and stores are wired here; RPC handlers live in server.ts.

import { addrConfig, commonConfig, int, loadConfig, serviceConfig, str } from '@ballast/config';
import { runMain, runService } from '@ballast/grpc-kit';
import { connectRedis } from '@ballast/queue';
import { openServiceStore } from '@ballast/storage';
import { createLogger } from '@ballast/telemetry';
import { IngestSource } from './ingest-source.js';
import { Materializer } from './materialize.js';
import { featureMetrics } from './metrics.js';
import { migrations } from './migrations.js';
import { NearCache } from './near-cache.js';
import { DEFAULT_ONLINE_PREFIX, OnlineStore } from './online.js';
import { MaterializationRuns } from './runs.js';
import { serveFeature } from './server.js';
import { FeatureStore } from './store.js';
import { VersionStatistics } from './version-statistics.js';
import { Views } from './views.js';
import { materializeWorker } from './worker.js';

runMain(async () => {
  const config = loadConfig({
    ...commonConfig,
    ...serviceConfig('feature'),
    ...addrConfig('ingest'),
    /** Redis key prefix of the online store. */
    BALLAST_FEATURE_ONLINE_PREFIX: str().default(DEFAULT_ONLINE_PREFIX),
    /** Online vectors kept in process memory, invalidated by Redis (near-cache.ts); 0: off. */
    BALLAST_FEATURE_ONLINE_CACHE_ENTRIES: int({ min: 0 }).default(100_000),
  });
  const log = createLogger({ service: 'feature', level: config.BALLAST_LOG_LEVEL });
  const redis = connectRedis(config.BALLAST_REDIS_URL);
  const serviceStore = openServiceStore({
    url: config.BALLAST_DATABASE_URL,
    dataDir: config.BALLAST_DATA_DIR,
    schema: 'feature',
    migrations,
  });
  const store = new FeatureStore(() => serviceStore.sql);
  const views = new Views(store);
  const prefix = config.BALLAST_FEATURE_ONLINE_PREFIX;
  const cacheEntries = config.BALLAST_FEATURE_ONLINE_CACHE_ENTRIES;
  const cache = cacheEntries > 0 ? NearCache.open(redis, `${prefix}:`, cacheEntries) : undefined;
  const metrics = featureMetrics(cache);
  const online = new OnlineStore(redis, prefix, { cache, onRead: metrics.onlineRead });
  // Dataset versions are read from ingest's ReadVersion stream.
  const source = new IngestSource(config.BALLAST_INGEST_ADDR, { authToken: config.BALLAST_AUTH_TOKEN });
  const runs = new MaterializationRuns(() => serviceStore.sql);
  const statistics = new VersionStatistics(store);
  const materializer = new Materializer({
    store,
    online,
    source,
    runs,
    onOutcome: metrics.materialized,
    statistics,
    onStatisticsError: (err, view, datasetVersion) =>
      log.warn(
        { err, view: view.name, viewVersion: view.version, datasetVersion },
        'statistics not worked out after materializing; GetFeatureStatistics will compute them when asked',
      ),
  });
  let worker: ReturnType<typeof materializeWorker> | undefined;
  await runService({
    name: 'feature',
    log,
    grpc: {
      host: config.BALLAST_GRPC_HOST,
      port: config.BALLAST_FEATURE_GRPC_PORT,
      services: [serveFeature({ store, views, online, materializer, runs, statistics })],
      authToken: config.BALLAST_AUTH_TOKEN,
      maxMessageBytes: config.BALLAST_GRPC_MAX_MESSAGE_BYTES,
    },
    http: { host: config.BALLAST_GRPC_HOST, port: config.BALLAST_FEATURE_HTTP_PORT },
    dependencies: [
      { name: 'redis', check: () => redis.ping() },
      { name: 'database', check: () => serviceStore.ping() },
    ],
    prepare: async () => {
      await serviceStore.migrate();
      worker ??= materializeWorker(
        { store, views, materializer },
        { connection: redis, onError: (err) => log.error({ err }, 'materialize worker error') },
      );
    },
    close: [
      () => worker?.close(),
      () => materializer.close(),
      () => source.close(),
      () => cache?.close(),
      () => redis.disconnect(),
      () => serviceStore.close(),
    ],
    shutdownGraceMs: config.BALLAST_SHUTDOWN_GRACE_MS,
  });
});
