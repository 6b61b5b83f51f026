import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RegistryService, Task } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { createClient, serve, startGrpcServer } from '@ballast/grpc-kit';
import { BENCH_WINDOW_MS, measureLoad, writeBenchResult } from '@ballast/grpc-kit/testing';
import { migrate, openDatabase } from '@ballast/storage';
import { DEFAULT_ARTIFACT_LIMITS } from '../artifacts.js';
import { TeamAuth } from '../auth.js';
import { fsBlobStore } from '../blob-stores/open-blob-store.js';
import { PostgresBlobStore } from '../blob-stores/postgres-blob-store.js';
import { migrations } from '../migrations.js';
import { registryService } from '../server.js';
import { DeploymentFeed } from '../watch.js';

/**
 * The registry's two hot paths, each next to its limit on this machine:
 *  - artifact upload and download (MB/s through gRPC, hashing and the blob store) beside
 *    copying and reading the same bytes on local disk;
 *  - GetVersionByAlias (what inference asks on every swap) at concurrency 1/16/64.
 * Client and server share this process, as a caller on the same host would share the cores.
 * PGlite by default; BALLAST_DATABASE_URL=postgres://... to measure on Postgres.
 * BENCH_BLOB_STORE=postgres keeps the blobs in that database (the replicated registry's store)
 * instead of a directory; its results go to registry-postgres-blobs.json.
 */
const ARTIFACT_MB = Number(process.env.BENCH_ARTIFACT_MB ?? 64);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENCY = (process.env.BENCH_CONCURRENCY ?? '1,16,64').split(',').map(Number);
const CHUNK = 1024 * 1024;
const BLOB_STORE = process.env.BENCH_BLOB_STORE === 'postgres' ? 'postgres' : 'fs';

const dir = await mkdtemp(join(tmpdir(), 'ballast-registry-bench-'));
const url = process.env.BALLAST_DATABASE_URL;
const sql = url
  ? await openDatabase({ url, schema: `bench_registry_${randomBytes(3).toString('hex')}` })
  : await openDatabase({ dataDir: dir, schema: 'registry' });
await migrate(sql, migrations);
const blobs =
  BLOB_STORE === 'postgres' ? new PostgresBlobStore(() => sql) : fsBlobStore(join(dir, 'artifacts'));
const quiet = { info() {}, warn() {}, error() {} };
const server = await startGrpcServer({
  services: [
    serve(
      RegistryService,
      registryService({
        sql: () => sql,
        blobs,
        feed: new DeploymentFeed(),
        limits: DEFAULT_ARTIFACT_LIMITS,
        watchPollMs: 1_000,
        auth: new TeamAuth(undefined),
      }),
    ),
  ],
  host: '127.0.0.1',
  port: 0,
  log: quiet,
});
server.setReady(true);
const client = createClient(RegistryService, { address: `127.0.0.1:${server.port}`, deadlineMs: 600_000 });

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
const mbps = (bytes: number, ms: number) => Math.round((bytes / 1024 / 1024 / (ms / 1000)) * 10) / 10;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

function artifact(round: number) {
  // Fresh bytes each round, so every upload writes (identical content would be deduplicated).
  const weights = randomBytes(ARTIFACT_MB * 1024 * 1024);
  const modelJson = Buffer.from(
    JSON.stringify({
      format: 'layers-model',
      modelTopology: { class_name: 'Sequential', config: { name: `bench-${round}`, layers: [] } },
      weightsManifest: [{ paths: ['weights.bin'], weights: [] }],
    }),
  );
  return [
    { path: 'model.json', data: modelJson },
    { path: 'weights.bin', data: weights },
  ];
}

async function* uploadParts(files: { path: string; data: Buffer }[]) {
  yield {
    part: {
      case: 'manifest' as const,
      value: {
        files: files.map((f) => ({ path: f.path, size: BigInt(f.data.byteLength), sha256: sha256(f.data) })),
      },
    },
  };
  for (const file of files)
    for (let at = 0; at < file.data.byteLength; at += CHUNK)
      yield {
        part: {
          case: 'chunk' as const,
          value: { path: file.path, data: file.data.subarray(at, at + CHUNK) },
        },
      };
}

const transfer = {
  upload: [] as number[],
  download: [] as number[],
  diskCopy: [] as number[],
  diskRead: [] as number[],
};
let lastDigest = '';
for (let round = 0; round < ROUNDS; round++) {
  const files = artifact(round);
  const bytes = files.reduce((n, f) => n + f.data.byteLength, 0);

  let t0 = performance.now();
  const uploaded = await client.uploadArtifact(uploadParts(files));
  transfer.upload.push(mbps(bytes, performance.now() - t0));
  lastDigest = uploaded.manifest?.digest ?? '';

  t0 = performance.now();
  let received = 0;
  for await (const part of client.downloadArtifact({ digest: lastDigest })) {
    if (part.part.case === 'chunk') received += part.part.value.data.byteLength;
  }
  transfer.download.push(mbps(received, performance.now() - t0));
  if (received !== bytes) throw new Error(`downloaded ${received} of ${bytes} bytes`);

  // The limit: the same bytes copied file to file and flushed (as the blob store flushes),
  // and read back, on the same disk.
  const source = join(dir, `source-${round}`);
  const copy = join(dir, `copy-${round}`);
  await writeFile(source, files[1]?.data ?? Buffer.alloc(0));
  t0 = performance.now();
  await copyFile(source, copy);
  const handle = await open(copy, 'r+');
  await handle.sync();
  await handle.close();
  transfer.diskCopy.push(mbps(bytes, performance.now() - t0));
  t0 = performance.now();
  await readFile(copy);
  transfer.diskRead.push(mbps(bytes, performance.now() - t0));
  await rm(source);
  await rm(copy);
}

const transferRows = [
  {
    path: 'upload (gRPC stream, sha256, fsync)',
    median_MB_per_s: median(transfer.upload),
    limit: 'disk copy + fsync',
    limit_MB_per_s: median(transfer.diskCopy),
  },
  {
    path: 'download (gRPC stream, sha256 check)',
    median_MB_per_s: median(transfer.download),
    limit: 'disk read',
    limit_MB_per_s: median(transfer.diskRead),
  },
].map((row) => ({ ...row, ratio: Math.round((row.median_MB_per_s / row.limit_MB_per_s) * 100) / 100 }));

// GetVersionByAlias: a model with a production alias, asked for concurrently.
await client.createModel({ name: 'bench', task: Task.REGRESSION, ownerTeam: 'bench' });
const { version } = await client.createModelVersion({
  model: 'bench',
  artifactDigest: lastDigest,
  lineage: {
    dataset: { name: 'sales', version: 'v1' },
    featureView: { name: 'demand', version: 'v1' },
    config: { seed: 1n },
    environment: { nodeVersion: process.version, tfjsVersion: 'n/a', backend: 'n/a' },
  },
  metrics: [{ name: 'mae', evalSet: 'holdout', value: 1 }],
  servingProfile: { backend: 'wasm', latency: [{ batchSize: 1, p50Ms: 1, p99Ms: 2 }], costPerMillion: 1 },
  signature: {
    inputs: [{ name: 'x', dtype: 'float32', shape: [-1n, 4n] }],
    outputs: [{ name: 'y', dtype: 'float32' }],
  },
});
await client.promote({ model: 'bench', version: version?.version ?? 0 });
const lookup = () => client.getVersionByAlias({ model: 'bench', alias: 'production' });
const aliasRows = [];
for (const concurrency of CONCURRENCY) aliasRows.push(await measureLoad(lookup, concurrency));

client.close();
await server.shutdown();
await sql.close();
await rm(dir, { recursive: true, force: true });

const backend = url ? 'postgres' : 'pglite';
console.log(
  `registry artifact transfer, ${ARTIFACT_MB} MiB artifact, ${ROUNDS} rounds (median), ${backend}, blobs on ${BLOB_STORE}`,
);
console.table(transferRows);
console.log(`registry GetVersionByAlias over loopback, ${backend}`);
console.table(aliasRows);
const name = BLOB_STORE === 'postgres' ? 'registry-postgres-blobs' : 'registry';
const out = writeBenchResult(dirname(fileURLToPath(import.meta.url)), name, {
  backend,
  blobStore: BLOB_STORE,
  loadAverage: loadavg(),
  artifactMiB: ARTIFACT_MB,
  rounds: ROUNDS,
  windowMs: BENCH_WINDOW_MS,
  transfer: { ...transfer, rows: transferRows },
  getVersionByAlias: aliasRows,
});
console.log(`wrote ${out}`);
