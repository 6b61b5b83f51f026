import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { IngestService, SchemaSchema } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { serve, startGrpcServer } from '@ballast/grpc-kit';
import { migrate, openDatabase, type SqlKind } from '@ballast/storage';
import { create } from '@bufbuild/protobuf';
import { migrations } from '../migrations.js';
import { parseSchema } from '../schema.js';
import { ingestService } from '../server.js';
import { IngestStore } from '../store.js';
import { salesSchema } from '../testing/sales.js';
import { insertSyntheticSales } from '../testing/synthetic.js';

/**
 * The service side of the commit benchmark, as its own process (forked by commit.ts) so that
 * the event-loop delay it measures is the service's alone: a dataset of N synthetic sales
 * records (written by SQL, which is not what is measured), the ingest service on a loopback
 * port, and over IPC: 'measure' starts the delay histogram, the RSS sampler and the CPU
 * clock, 'report' sends what they saw. BENCH_CPU_PROFILE=<dir>: the service's CPU profile
 * between the two (1 ms sampling), written to <dir>/commit-<backend>-<N>-<run>.cpuprofile.
 */
const [backend, count, location, schema] = process.argv.slice(2) as [SqlKind, string, string, string];
const n = Number(count);
const sql = await openDatabase(
  backend === 'postgres' ? { url: location, schema } : { dataDir: location, schema },
);
await migrate(sql, migrations);
const store = new IngestStore(() => sql);
const dataset = await store.createDataset('bench', '', parseSchema(create(SchemaSchema, salesSchema())));
const setupStart = performance.now();
await insertSyntheticSales(sql, dataset.id, n);
const setupS = (performance.now() - setupStart) / 1000;
// What the setup leaves behind is settled before anything is timed, as pgbench vacuums before
// a run: autovacuum may otherwise start on the freshly written table during the commit (on
// this two-core machine taking a core from it, for longer the larger the table), and on
// Postgres a checkpoint writes out the setup's dirty pages now instead of during the commit.
// (Before this, every function of the second pass ran ~15% slower a record at 4M than at
// 1M in CPU profiles; that autovacuum was the cause is likely, not shown.)
const settleStart = performance.now();
await sql.exec('VACUUM (ANALYZE) records');
if (backend === 'postgres') await sql.exec('CHECKPOINT');
const settleS = (performance.now() - settleStart) / 1000;
const server = await startGrpcServer({
  services: [serve(IngestService, ingestService({ db: () => sql, enqueue: async () => {} }))],
  host: '127.0.0.1',
  port: 0,
  log: { info() {}, warn() {}, error() {} },
});
server.setReady(true);

const delay = monitorEventLoopDelay({ resolution: 1 });
let peakRss = 0;
let sampler: NodeJS.Timeout | undefined;
let cpuFrom = process.cpuUsage();
const profileDir = process.env.BENCH_CPU_PROFILE;
const profiler = profileDir ? new Session() : undefined;
let profiles = 0;
profiler?.connect();
process.on('message', async (message: string) => {
  if (message === 'measure') {
    if (profiler) {
      await profiler.post('Profiler.enable');
      await profiler.post('Profiler.setSamplingInterval', { interval: 1000 });
      await profiler.post('Profiler.start');
    }
    delay.reset();
    delay.enable();
    cpuFrom = process.cpuUsage();
    peakRss = process.memoryUsage.rss();
    sampler = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
    }, 20);
  } else if (message === 'report') {
    delay.disable();
    clearInterval(sampler);
    const cpu = process.cpuUsage(cpuFrom);
    const report = {
      setupS,
      settleS,
      cpuS: (cpu.user + cpu.system) / 1e6,
      loopMaxMs: delay.max / 1e6,
      loopP99Ms: delay.percentile(99) / 1e6,
      peakRssMb: Math.max(peakRss, process.memoryUsage.rss()) / 2 ** 20,
    };
    if (profiler && profileDir) {
      const { profile } = await profiler.post('Profiler.stop');
      await writeFile(
        join(profileDir, `commit-${backend}-${n}-${++profiles}.cpuprofile`),
        JSON.stringify(profile),
      );
    }
    process.send?.(report);
  }
});
process.send?.({ port: server.port });
