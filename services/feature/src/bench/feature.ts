import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  FeatureService,
  FieldStatus,
  GetOnlineFeaturesRequestSchema,
  GetOnlineFeaturesResponseSchema,
} from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { createClient, startGrpcServer } from '@ballast/grpc-kit';
import { BENCH_WINDOW_MS, measureLoad, writeBenchResult } from '@ballast/grpc-kit/testing';
import { connectRedis } from '@ballast/queue';
import { migrate, openDatabase } from '@ballast/storage';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { Client, credentials, Server, ServerCredentials } from '@grpc/grpc-js';
import { compileView } from '../definition.js';
import { Materializer } from '../materialize.js';
import { migrations } from '../migrations.js';
import { NearCache } from '../near-cache.js';
import { OnlineStore } from '../online.js';
import { MemorySource, readTable } from '../records.js';
import { MaterializationRuns } from '../runs.js';
import { serveFeature } from '../server.js';
import { FeatureStore } from '../store.js';
import { deleteKeys } from '../testing/redis-keys.js';
import { batches, retailDefinition, retailRecords } from '../testing/retail.js';
import { computeRows } from '../transforms.js';
import { VersionStatistics } from '../version-statistics.js';
import { Views } from '../views.js';

/**
 * The feature service's hot paths, each beside its limit on this machine:
 *  - GetOnlineFeatures for 1, 100 and 1,000 entities at concurrency 1/16/64, served from the
 *    near cache (the default) and with every read going to Redis, beside a bare
 *    pipelined Redis read of the same keys (MGET on the same connection) and a bare grpc-js
 *    server answering a pre-encoded response of the same size (the transport's limit);
 *  - materialization rows/s (engine, offline write, online write).
 * One raw grpc-js client drives both servers with the same request bytes (the ratio compares
 * servers); the generated client's rate, which adds protobuf-es encoding and decoding, is
 * reported beside it. Client and servers share this process and the machine's cores, as a
 * caller on the same host would. PGlite by default; BALLAST_DATABASE_URL=postgres://... for
 * Postgres.
 */
const CONCURRENCY = (process.env.BENCH_CONCURRENCY ?? '1,16,64').split(',').map(Number);
const SIZES = (process.env.BENCH_ENTITIES ?? '1,100,1000').split(',').map(Number);
const WAREHOUSES = Number(process.env.BENCH_WAREHOUSES ?? 25);
const SKUS = Number(process.env.BENCH_SKUS ?? 40);
const DAYS = Number(process.env.BENCH_DAYS ?? 60);

const dir = await mkdtemp(join(tmpdir(), 'ballast-feature-bench-'));
const url = process.env.BALLAST_DATABASE_URL;
const schema = `bench_feature_${randomBytes(3).toString('hex')}`;
const sql = url
  ? await openDatabase({ url, schema })
  : await openDatabase({ dataDir: dir, schema: 'feature' });
await migrate(sql, migrations);
const redis = connectRedis();
const prefix = `bench-feature-${randomBytes(4).toString('hex')}`;
const store = new FeatureStore(() => sql);
const views = new Views(store);
// As the service runs by default: repeated reads come from the near cache.
const cache = NearCache.open(redis, `${prefix}:`, 100_000);
await cache.tracking();
const online = new OnlineStore(redis, prefix, { cache });
// The same store with every read going to Redis, for the uncached column.
const uncachedOnline = new OnlineStore(redis, prefix);
const source = new MemorySource();
const runs = new MaterializationRuns(() => sql);
const materializer = new Materializer({ store, online, source, runs });

// Materialization: every warehouse x SKU x day.
const records = retailRecords({ warehouses: WAREHOUSES, skus: SKUS, days: DAYS });
source.put('sales', 'v1', batches(records, 5_000));
const view = compileView(retailDefinition());
await store.applyView(view);
let t0 = performance.now();
const table = await readTable(source, 'sales', 'v1', view.fields);
const rows = computeRows(view, table);
const engineMs = performance.now() - t0;
t0 = performance.now();
const result = await materializer.run(view, 'v1');
const totalMs = performance.now() - t0;
const materialization = {
  records: result.records,
  rows: result.rows,
  entities: result.entities,
  features: view.featureNames.length,
  engine_rows_per_s: Math.round(rows.count / (engineMs / 1000)),
  end_to_end_rows_per_s: Math.round(result.rows / (totalMs / 1000)),
  end_to_end_ms: Math.round(totalMs),
};

const quiet = { info() {}, warn() {}, error() {} };
async function startFeatureServer(onlineStore: OnlineStore) {
  const started = await startGrpcServer({
    services: [
      serveFeature({
        store,
        views,
        online: onlineStore,
        materializer,
        runs,
        statistics: new VersionStatistics(store),
      }),
    ],
    host: '127.0.0.1',
    port: 0,
    log: quiet,
  });
  started.setReady(true);
  return started;
}
const server = await startFeatureServer(online);
const uncachedServer = await startFeatureServer(uncachedOnline);
const client = createClient(FeatureService, { address: `127.0.0.1:${server.port}`, deadlineMs: 60_000 });

// The bare transport: a grpc-js server that answers every call with the same bytes.
let reply = Buffer.alloc(0);
const bare = new Server();
const identity = (b: Buffer) => b;
bare.addService(
  {
    get: {
      path: '/bench.Bare/Get',
      requestStream: false,
      responseStream: false,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    },
  },
  { get: (_call: unknown, callback: (err: null, value: Buffer) => void) => callback(null, reply) },
);
const barePort = await new Promise<number>((resolve, reject) =>
  bare.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) =>
    err ? reject(err) : resolve(port),
  ),
);
// Both servers are driven by the same raw client sending the same request bytes, so the
// ratio compares servers, not the client's protobuf work (which is measured on its own).
const rawCall = (raw: Client, path: string) => () =>
  new Promise<Buffer>((resolve, reject) =>
    raw.makeUnaryRequest(path, identity, identity, request, (err, value) =>
      err || !value ? reject(err) : resolve(value),
    ),
  );
const bareClient = new Client(`127.0.0.1:${barePort}`, credentials.createInsecure());
const featureRaw = new Client(`127.0.0.1:${server.port}`, credentials.createInsecure());
let request = Buffer.alloc(0);
const bareCall = rawCall(bareClient, '/bench.Bare/Get');
const featureCall = rawCall(featureRaw, `/${FeatureService.typeName}/GetOnlineFeatures`);
const uncachedRaw = new Client(`127.0.0.1:${uncachedServer.port}`, credentials.createInsecure());
const uncachedCall = rawCall(uncachedRaw, `/${FeatureService.typeName}/GetOnlineFeatures`);

const entityKeys = [...new Set(rows.entityKeys)];
const onlineRows = [];
for (const size of SIZES) {
  const keys = entityKeys.slice(0, size);
  const entities = keys.map((k) => ({ values: JSON.parse(k) as string[] }));
  // Packed values: inference's path (a Float64Array, no per-value encoding).
  const typedCall = () => client.getOnlineFeatures({ view: 'demand', entities, packed: true });
  const sample = await typedCall();
  if (sample.statuses.length !== size || sample.statuses.some((s) => s === FieldStatus.NOT_FOUND)) {
    throw new Error('online read did not return every entity');
  }
  // The bare server gets the same request bytes and answers the same response bytes.
  reply = Buffer.from(toBinary(GetOnlineFeaturesResponseSchema, sample));
  request = Buffer.from(
    toBinary(
      GetOnlineFeaturesRequestSchema,
      create(GetOnlineFeaturesRequestSchema, { view: 'demand', entities, packed: true }),
    ),
  );
  for (const read of [featureCall, uncachedCall]) {
    const raw = fromBinary(GetOnlineFeaturesResponseSchema, await read());
    if (!Buffer.from(raw.packedValues).equals(Buffer.from(sample.packedValues))) {
      throw new Error(
        'the raw and typed clients, or the cached and uncached servers, read different vectors',
      );
    }
  }
  const redisKeys = keys.map((k) => online.key(view.version, k));
  const redisCall = () => redis.mgetBuffer(redisKeys);
  for (const concurrency of CONCURRENCY) {
    const feature = await measureLoad(featureCall, concurrency);
    const uncached = await measureLoad(uncachedCall, concurrency);
    const typed = await measureLoad(typedCall, concurrency);
    const redisOnly = await measureLoad(redisCall, concurrency);
    const transport = await measureLoad(bareCall, concurrency);
    onlineRows.push({
      entities: size,
      concurrency,
      response_bytes: reply.length,
      p50_us: feature.p50_us,
      p99_us: feature.p99_us,
      per_s: feature.throughput_per_s,
      redis_p50_us: redisOnly.p50_us,
      redis_p99_us: redisOnly.p99_us,
      redis_per_s: redisOnly.throughput_per_s,
      redis_ratio_p50: Math.round((feature.p50_us / redisOnly.p50_us) * 10) / 10,
      bare_grpc_per_s: transport.throughput_per_s,
      vs_bare_grpc: Math.round((feature.throughput_per_s / transport.throughput_per_s) * 100) / 100,
      // Near cache off: every call reads its keys from Redis.
      uncached_p50_us: uncached.p50_us,
      uncached_p99_us: uncached.p99_us,
      uncached_per_s: uncached.throughput_per_s,
      uncached_vs_bare_grpc: Math.round((uncached.throughput_per_s / transport.throughput_per_s) * 100) / 100,
      // The same calls through the generated client: protobuf-es encodes and decodes each one.
      typed_client_per_s: typed.throughput_per_s,
      typed_client_p99_us: typed.p99_us,
      stable: feature.stable && uncached.stable && redisOnly.stable && transport.stable,
    });
  }
}

const cpu = process.cpuUsage();
client.close();
featureRaw.close();
uncachedRaw.close();
bareClient.close();
bare.forceShutdown();
await server.shutdown();
await uncachedServer.shutdown();
await cache.close();
await deleteKeys(redis, `${prefix}*`);
redis.disconnect();
if (url) await sql.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
await sql.close();
await rm(dir, { recursive: true, force: true });

const backend = url ? 'postgres' : 'pglite';
console.log(`feature materialization (${backend}, ${WAREHOUSES}x${SKUS} entities x ${DAYS} days)`);
console.table([materialization]);
console.log(
  'GetOnlineFeatures over loopback (near cache on, and off) vs bare Redis MGET of the same keys and a bare grpc-js reply of the same size',
);
// The full rows (latencies of every column) are in the JSON; the table keeps it readable.
console.table(
  onlineRows.map((r) => ({
    entities: r.entities,
    c: r.concurrency,
    p50_us: r.p50_us,
    p99_us: r.p99_us,
    per_s: r.per_s,
    vs_bare: r.vs_bare_grpc,
    uncached_per_s: r.uncached_per_s,
    uncached_vs_bare: r.uncached_vs_bare_grpc,
    redis_mget_per_s: r.redis_per_s,
    bare_grpc_per_s: r.bare_grpc_per_s,
    typed_client_per_s: r.typed_client_per_s,
    stable: r.stable,
  })),
);
console.log(
  `process CPU (client + servers): user ${(cpu.user / 1e6).toFixed(1)}s, system ${(cpu.system / 1e6).toFixed(1)}s`,
);
const out = writeBenchResult(dirname(fileURLToPath(import.meta.url)), 'feature', {
  backend,
  windowMs: BENCH_WINDOW_MS,
  cpu,
  materialization,
  getOnlineFeatures: onlineRows,
});
console.log(`wrote ${out}`);
