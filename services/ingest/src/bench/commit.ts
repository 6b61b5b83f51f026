import { fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { Health } from '@ballast/contracts/grpc/health/v1/health_pb.js';
import { createClient } from '@ballast/grpc-kit';
import { openDatabase, type SqlKind } from '@ballast/storage';

/**
 * Commit cost: CommitVersion over N synthetic sales records (N = 100k and 1M by default) on
 * each backend, against the service in its own process. Reported per run: the commit's
 * wall time and records/s, the time ratio between consecutive sizes (linear is 10x per 10x
 * rows), the service's peak RSS and event-loop max delay during the commit, and the latency
 * of health checks (and GetDataset calls, BENCH_PROBE_GETDATASET=1) made back to back, 20 ms
 * apart, while it runs.
 */
const here = dirname(fileURLToPath(import.meta.url));
const SIZES = (process.env.BENCH_COMMIT_SIZES ?? '100000,1000000').split(',').map(Number);
const BACKENDS = (process.env.BENCH_BACKENDS ?? 'postgres,pglite').split(',') as SqlKind[];
/**
 * Probe with GetDataset too (alternating with health checks). Off by default: GetDataset
 * counts the dataset's records with count(*), which on PGlite at 1M records takes the
 * service's thread for about half a second per call, so its probes measure that, not the
 * commit.
 */
const PROBE_GETDATASET = process.env.BENCH_PROBE_GETDATASET === '1';
const DATABASE_URL = process.env.BALLAST_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}
const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
const progress = (line: string) => process.stderr.write(`${line}\n`);

interface Report {
  loopMaxMs: number;
  loopP99Ms: number;
  peakRssMb: number;
}

async function run(backend: SqlKind, n: number) {
  const schema = `bench_commit_${process.pid}_${n}`;
  const dataDir = await mkdtemp(join(tmpdir(), 'ballast-commit-bench-'));
  const child = fork(
    join(here, 'commit-server.js'),
    [backend, String(n), backend === 'postgres' ? DATABASE_URL : dataDir, schema],
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );
  child.on('exit', (code, signal) => {
    if (code !== null || signal !== 'SIGKILL')
      progress(`${backend} ${n}: the service exited (${signal ?? code})`);
  });
  const message = <T>() => once(child, 'message').then(([m]) => m as T);
  try {
    const { port } = await message<{ port: number }>();
    const address = `127.0.0.1:${port}`;
    const ingest = createClient(IngestService, { address, deadlineMs: 60_000 });
    const health = createClient(Health, { address, deadlineMs: 60_000 });
    child.send('measure');
    const probes: number[] = [];
    let probing = true;
    const prober = (async () => {
      for (let i = 0; probing; i++) {
        const t0 = performance.now();
        if (i % 2 === 0 || !PROBE_GETDATASET) await health.check({ service: '' });
        else await ingest.getDataset({ name: 'bench' });
        probes.push(performance.now() - t0);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    const t0 = performance.now();
    const { version } = await ingest.commitVersion(
      { dataset: 'bench' },
      { timeoutMs: Number.POSITIVE_INFINITY },
    );
    const seconds = (performance.now() - t0) / 1000;
    probing = false;
    await prober;
    const reportP = message<Report>();
    child.send('report');
    const report = await reportP;
    ingest.close();
    health.close();
    if (Number(version?.recordCount) !== n)
      throw new Error(`committed ${version?.recordCount} records, not ${n}`);
    probes.sort((a, b) => a - b);
    return {
      backend,
      records: n,
      commit_s: round(seconds, 2),
      records_per_s: Math.round(n / seconds),
      peak_rss_mb: Math.round(report.peakRssMb),
      loop_max_ms: round(report.loopMaxMs),
      loop_p99_ms: round(report.loopP99Ms),
      probes: probes.length,
      probe_p50_ms: round(quantile(probes, 0.5)),
      probe_p99_ms: round(quantile(probes, 0.99)),
      probe_max_ms: round(probes.at(-1) ?? Number.NaN),
    };
  } finally {
    child.kill('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
    if (backend === 'postgres') {
      const sql = await openDatabase({ url: DATABASE_URL, schema });
      await sql.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await sql.close();
    }
  }
}

const loadBefore = loadavg();
const rows: Awaited<ReturnType<typeof run>>[] = [];
for (const backend of BACKENDS) {
  for (const n of SIZES) {
    progress(`${backend}: ${n} records`);
    rows.push(await run(backend, n));
    progress(JSON.stringify(rows.at(-1)));
  }
}
const ratios = BACKENDS.flatMap((backend) => {
  const mine = rows.filter((r) => r.backend === backend);
  return mine.slice(1).map((r, i) => {
    const prev = mine[i] as (typeof mine)[number];
    return {
      backend,
      sizes: `${r.records}/${prev.records}`,
      rows_ratio: r.records / prev.records,
      time_ratio: round(r.commit_s / prev.commit_s, 2),
    };
  });
});
const loadAfter = loadavg();
console.log('commit: CommitVersion over N synthetic sales records, service in its own process');
console.table(rows);
console.table(ratios);
console.log(
  `load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' ')}`,
);
const out = join(here, '..', '..', '..', '..', 'test', 'bench', 'results', 'ingest-commit.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(
  out,
  `${JSON.stringify({ benchmark: 'ingest-commit', date: new Date().toISOString(), node: process.version, loadBefore, loadAfter, rows, ratios }, null, 2)}\n`,
);
console.log(`wrote ${out}`);
