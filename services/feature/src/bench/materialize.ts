import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { lateTicks, startLoopCanary, writeBenchResult } from '@ballast/grpc-kit/testing';
import { connectRedis } from '@ballast/queue';
import { migrate, openDatabase, type SqlKind } from '@ballast/storage';
import { type CompiledView, compileView, DAY_MS, rangeMs } from '../definition.js';
import { Materializer } from '../materialize.js';
import { migrations } from '../migrations.js';
import { OnlineStore } from '../online.js';
import type { RecordSource, SourceBatch } from '../records.js';
import { MaterializationRuns } from '../runs.js';
import { FeatureStore } from '../store.js';
import { deleteKeys } from '../testing/redis-keys.js';
import { DAY0, retailDefinition } from '../testing/retail.js';
import { VersionStatistics } from '../version-statistics.js';

/**
 * Materialize end to end (records -> rows -> offline store -> online store) at each size in
 * BENCH_MATERIALIZE_ROWS (default 100,000 and 1,000,000): records/s, the ratio of the largest
 * size's time to the smallest's over the ratio of their rows (1.0 = linear), peak RSS of this
 * process (which is the feature process: the materializer, and PGlite, run in it as in the
 * service; Postgres's own processes are not counted), sampled every 50 ms per size, and the
 * kernel's lifetime peak (maxRSS), and the event loop's longest delay while it ran
 * (perf_hooks.monitorEventLoopDelay), next to how late a bare process's timer came meanwhile
 * (the machine's own pauses, loop-canary.ts). Then the statistics the service works out and
 * keeps after a materialization (10 and 20 bins): seconds and peak RSS, and the time to answer
 * GetFeatureStatistics from them. Records are generated page by page, 5,000 at a time as
 * ingest's ReadVersion sends them, for 1,000 entities. On each backend in BENCH_BACKENDS
 * (default postgres,pglite): Postgres from BALLAST_DATABASE_URL (default the local test
 * database), PGlite in a temporary directory. BENCH_MATERIALIZE_MODE: stream (default: staged
 * in the offline store, computed a chunk at a time, stream.ts) or memory (the version read
 * whole, so peak RSS grows with it: ~862 MiB at 1M). BENCH_RESULT names the results file.
 */
const SIZES = (process.env.BENCH_MATERIALIZE_ROWS ?? '100000,1000000').split(',').map(Number);
const ENTITIES = 1_000;
const PAGE = 5_000;
const url = process.env.BALLAST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const BACKENDS = (process.env.BENCH_BACKENDS ?? 'postgres,pglite').split(',') as SqlKind[];
const MODE = (process.env.BENCH_MATERIALIZE_MODE ?? 'stream') as 'stream' | 'memory';

/** Entity-major pages of synthetic sales: entity e's day d is record e * days + d. */
class SyntheticSource implements RecordSource {
  constructor(private readonly rows: number) {}
  async *read(): AsyncIterable<SourceBatch> {
    const days = Math.ceil(this.rows / ENTITIES);
    for (let at = 0; at < this.rows; at += PAGE) {
      const n = Math.min(PAGE, this.rows - at);
      const columns = {
        event_id: new Array<string>(n),
        day: new Array<number>(n),
        warehouse_id: new Array<string>(n),
        sku: new Array<string>(n),
        region: new Array<string>(n),
        units: new Array<number>(n),
        price: new Array<number>(n),
        promo: new Array<boolean>(n),
      };
      for (let i = 0; i < n; i++) {
        const r = at + i;
        const e = Math.floor(r / days);
        const d = r % days;
        columns.event_id[i] = `e${r}`;
        columns.day[i] = DAY0 + d * DAY_MS;
        columns.warehouse_id[i] = `w${e % 25}`;
        columns.sku[i] = `sku-${Math.floor(e / 25)}`;
        columns.region[i] = ['north', 'south', 'east', 'west'][e % 4] as string;
        columns.units[i] = 10 + ((r * 7919) % 23);
        columns.price[i] = 5 + (r % 5);
        columns.promo[i] = r % 7 === 0;
      }
      yield { rowCount: n, columns };
    }
  }
}

interface Point {
  backend: SqlKind;
  mode: 'stream' | 'memory';
  records: number;
  rows: number;
  seconds: number;
  /** Until the records were read (and, streaming, staged): progress 0.4. */
  readSeconds: number;
  recordsPerSecond: number;
  peakRssMiB: number;
  /** The process's peak RSS since it started (getrusage), all sizes so far. */
  maxRssMiB: number;
  eventLoopMaxDelayMs: number;
  eventLoopP99DelayMs: number;
  /** The same seen by a 10 ms setInterval in this process: how late each tick came (what a health check would wait). */
  timerLateMaxMs: number;
  timerLateP99Ms: number;
  /** The same in a bare process beside it (loop-canary.ts): the pauses every process on the machine saw. */
  canaryLateMaxMs: number;
  canaryLateP99Ms: number;
  /**
   * Statistics over the materialized rows afterwards, as the service works them out and keeps
   * them (10 and 20 bins in one read): time and the process's peak RSS meanwhile; then the time
   * GetFeatureStatistics' work takes to answer from what was kept.
   */
  statisticsSeconds: number;
  statisticsPeakRssMiB: number;
  statisticsKeptAnswerMs: number;
  /** 1-minute load average as the size started and as it ended (the machine is shared). */
  loadAverage1mBefore: number;
  loadAverage1m: number;
}

/**
 * What the service does for GetFeatureStatistics after a materialization: works out the
 * kept answers (VersionStatistics.precompute: 10 and 20 bins from one read of the rows, two
 * passes when there are more rows than the sample), then answers a request from them.
 */
async function measureStatistics(store: FeatureStore, view: CompiledView, datasetVersion: string) {
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 50);
  const statistics = new VersionStatistics(store);
  const t0 = performance.now();
  await statistics.precompute(view, datasetVersion);
  const seconds = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  const done = await store.materialization(view.version, datasetVersion);
  if (!done) throw new Error(`${datasetVersion} is not materialized`);
  const t1 = performance.now();
  const answer = await statistics.answer(view, datasetVersion, done, { bins: 20, ...rangeMs(undefined) });
  const keptAnswerMs = performance.now() - t1;
  if (answer.rowCount === 0n) throw new Error(`no rows to take statistics of in ${datasetVersion}`);
  return {
    seconds: Math.round(seconds * 1000) / 1000,
    peakRssMiB: Math.round(peak / 2 ** 20),
    keptAnswerMs: Math.round(keptAnswerMs * 10) / 10,
  };
}

async function runBackend(backend: SqlKind): Promise<Point[]> {
  const schema = `bench_materialize_${randomBytes(3).toString('hex')}`;
  const dataDir = backend === 'pglite' ? await mkdtemp(join(tmpdir(), 'ballast-materialize-bench-')) : '';
  const sql = await openDatabase(backend === 'postgres' ? { url, schema } : { dataDir, schema });
  await migrate(sql, migrations);
  const redis = connectRedis();
  const prefix = `bench-materialize-${randomBytes(4).toString('hex')}`;
  const store = new FeatureStore(() => sql);
  const online = new OnlineStore(redis, prefix);
  const runs = new MaterializationRuns(() => sql);
  const view = compileView(retailDefinition());
  await store.applyView(view);
  const points: Point[] = [];
  try {
    for (const size of SIZES) {
      const materializer = new Materializer({
        store,
        online,
        source: new SyntheticSource(size),
        runs,
        mode: MODE,
        chunkRecords: process.env.BENCH_CHUNK_RECORDS ? Number(process.env.BENCH_CHUNK_RECORDS) : undefined,
      });
      let peakRss = process.memoryUsage().rss;
      const sampler = setInterval(() => {
        peakRss = Math.max(peakRss, process.memoryUsage().rss);
      }, 50);
      const delay = monitorEventLoopDelay({ resolution: 10 });
      delay.enable();
      const timer = lateTicks(10);
      const canary = await startLoopCanary();
      const loadBefore = Math.round((loadavg()[0] ?? 0) * 100) / 100;
      const t0 = performance.now();
      let readAt = 0;
      const result = await materializer.run(view, `v${size}`, {
        progress: (fraction) => {
          if (fraction >= 0.4 && !readAt) readAt = performance.now();
        },
      });
      const seconds = (performance.now() - t0) / 1000;
      delay.disable();
      const late = timer.stop();
      const machine = await canary.stop();
      clearInterval(sampler);
      const loadAfter = Math.round((loadavg()[0] ?? 0) * 100) / 100;
      const statistics = await measureStatistics(store, view, `v${size}`);
      points.push({
        backend,
        mode: MODE,
        records: result.records,
        rows: result.rows,
        seconds: Math.round(seconds * 100) / 100,
        readSeconds: Math.round(readAt - t0) / 1000,
        recordsPerSecond: Math.round(result.records / seconds),
        peakRssMiB: Math.round(peakRss / 2 ** 20),
        maxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
        eventLoopMaxDelayMs: Math.round(delay.max / 1e5) / 10,
        eventLoopP99DelayMs: Math.round(delay.percentile(99) / 1e5) / 10,
        timerLateMaxMs: late.max,
        timerLateP99Ms: late.p99,
        canaryLateMaxMs: machine.lateMaxMs,
        canaryLateP99Ms: machine.lateP99Ms,
        loadAverage1mBefore: loadBefore,
        statisticsSeconds: statistics.seconds,
        statisticsPeakRssMiB: statistics.peakRssMiB,
        statisticsKeptAnswerMs: statistics.keptAnswerMs,
        loadAverage1m: loadAfter,
      });
      console.error(JSON.stringify(points.at(-1)));
      await sql.query('DELETE FROM rows WHERE dataset_version = $1', [`v${size}`]);
    }
  } finally {
    if (backend === 'postgres') await sql.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await sql.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
    await deleteKeys(redis, `${prefix}*`);
    redis.disconnect();
  }
  return points;
}

const points: Point[] = [];
for (const backend of BACKENDS) points.push(...(await runBackend(backend)));

const scaling = BACKENDS.map((backend) => {
  const mine = points.filter((p) => p.backend === backend);
  const first = mine[0] as Point;
  const last = mine.at(-1) as Point;
  return {
    backend,
    perRecordTimeRatio:
      Math.round((last.seconds / first.seconds / (last.records / first.records)) * 100) / 100,
  };
});
console.table(points);
console.table(scaling);
const out = writeBenchResult(
  dirname(fileURLToPath(import.meta.url)),
  process.env.BENCH_RESULT ?? 'feature-materialize',
  {
    cpus: (await import('node:os')).cpus().length,
    mode: MODE,
    entities: ENTITIES,
    pageRecords: PAGE,
    points,
    scaling,
  },
);
console.log(`wrote ${out}`);
