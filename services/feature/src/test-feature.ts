import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FeatureService } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { createClient, type GrpcServer, type ServiceClient, startGrpcServer } from '@ballast/grpc-kit';
import { connectRedis, createQueue, QueueNames, queuePrefix, type RedisConnection } from '@ballast/queue';
import { migrate, openDatabase, type Sql, type SqlKind } from '@ballast/storage';
import { QueueEvents } from 'bullmq';
import { Materializer } from './materialize.js';
import { featureMetrics } from './metrics.js';
import { migrations } from './migrations.js';
import { NearCache } from './near-cache.js';
import { OnlineStore } from './online.js';
import { MemorySource, type RecordSource } from './records.js';
import { MaterializationRuns } from './runs.js';
import { serveFeature } from './server.js';
import { FeatureStore } from './store.js';
import { deleteKeys } from './testing/redis-keys.js';
import { VersionStatistics } from './version-statistics.js';
import { Views } from './views.js';
import { materializeWorker } from './worker.js';

/**
 * A real feature service for tests: the handlers on a grpc-js server over loopback, a real
 * Postgres schema or PGlite directory, and real Redis under a key prefix of its own. Records
 * come from an in-memory source the test fills.
 */

export const TEST_DATABASE_URL =
  process.env.BALLAST_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const TEST_REDIS_URL = process.env.BALLAST_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const BACKENDS: readonly SqlKind[] = ['postgres', 'pglite'];

export { deleteKeys };

const quiet = {
  info() {},
  warn() {},
  error(obj: object, msg?: string) {
    if (process.env.FEATURE_TEST_LOG) console.error(msg, obj);
  },
};

export interface TestFeature {
  client: ServiceClient<typeof FeatureService>;
  sql: Sql;
  redis: RedisConnection;
  prefix: string;
  source: MemorySource;
  store: FeatureStore;
  views: Views;
  online: OnlineStore;
  materializer: Materializer;
  runs: MaterializationRuns;
  statistics: VersionStatistics;
  close(): Promise<void>;
}

export async function startTestFeature(
  kind: SqlKind,
  options: { source?: RecordSource } = {},
): Promise<TestFeature> {
  const dir = await mkdtemp(join(tmpdir(), 'ballast-feature-test-'));
  const schema = `t_feature_${randomBytes(4).toString('hex')}`;
  const sql =
    kind === 'postgres'
      ? await openDatabase({ url: TEST_DATABASE_URL, schema })
      : await openDatabase({ dataDir: dir, schema: 'feature' });
  await migrate(sql, migrations);
  const redis = connectRedis(TEST_REDIS_URL);
  const prefix = `t-feature-${randomBytes(4).toString('hex')}`;
  const store = new FeatureStore(() => sql);
  const views = new Views(store);
  // With the near cache, as the service runs by default: reads after materialization and
  // online/offline agreement are then checked through it.
  const cache = NearCache.open(redis, `${prefix}:`, 10_000);
  await cache.tracking();
  const online = new OnlineStore(redis, prefix, { cache });
  const source = new MemorySource();
  const runs = new MaterializationRuns(() => sql);
  const statistics = new VersionStatistics(store);
  const materializer = new Materializer({
    store,
    online,
    source: options.source ?? source,
    runs,
    onOutcome: featureMetrics(undefined).materialized,
    statistics,
  });
  const server: GrpcServer = await startGrpcServer({
    services: [serveFeature({ store, views, online, materializer, runs, statistics })],
    host: '127.0.0.1',
    port: 0,
    log: quiet,
    shutdownGraceMs: 1_000,
  });
  server.setReady(true);
  const client = createClient(FeatureService, { address: `127.0.0.1:${server.port}`, deadlineMs: 60_000 });
  return {
    client,
    sql,
    redis,
    prefix,
    source,
    store,
    views,
    online,
    materializer,
    runs,
    statistics,
    async close() {
      client.close();
      await server.shutdown();
      await materializer.close();
      await cache.close();
      await deleteKeys(redis, `${prefix}*`);
      redis.disconnect();
      if (kind === 'postgres') await sql.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await sql.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function rejection(
  call: Promise<unknown>,
): Promise<{ code: number; details: string; field?: string }> {
  try {
    await call;
  } catch (err) {
    return err as { code: number; details: string; field?: string };
  }
  throw new Error('expected the call to fail');
}

export async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of stream) out.push(item);
  return out;
}

/** A features.materialize worker, queue and events under the test's own prefix; close removes the jobs. */
export async function materializeQueue(f: TestFeature) {
  const { prefix } = f;
  const worker = materializeWorker(f, { connection: f.redis, prefix, telemetry: false });
  const queue = createQueue(QueueNames.featuresMaterialize, {
    connection: f.redis,
    prefix,
    telemetry: false,
  });
  // A raw BullMQ object: it takes the prefix the queue really uses (tagged on a cluster).
  const events = new QueueEvents(QueueNames.featuresMaterialize, {
    connection: f.redis.duplicate(),
    prefix: queuePrefix(prefix, QueueNames.featuresMaterialize, f.redis),
  });
  await events.waitUntilReady();
  return {
    worker,
    queue,
    events,
    async close() {
      await worker.close();
      await queue.obliterate({ force: true });
      await queue.close();
      await events.close();
    },
  };
}
