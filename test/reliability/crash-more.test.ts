// More crashes (issue 17, item 9): kill -9 of ingest between a commit's database write and
// its materialize job, kill -9 of monitor while it drains logged predictions. Each service
// runs on a Redis of the test's own and a Postgres database of its own.
import { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { MonitorService } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { createClient, RpcError } from '@ballast/grpc-kit';
import { connectRedis, createQueue, type MonitorPredictionsJob, QueueNames } from '@ballast/queue';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { suiteRecorder } from './report.js';
import {
  psqlValue,
  ServingStatus,
  startService,
  suiteParts,
  tcpProxy,
  tempDir,
  until,
  waitHealth,
} from './support.js';
import { flatStatistics, salesBatch, salesSchema } from './workload.js';

const record = suiteRecorder('crash-more', 'More crashes: ingest mid-commit, monitor mid-drain');

const parts = suiteParts('crash-more');

describe('ingest', () => {
  it('kill -9 between the version commit and its materialize job: after a restart both exist', async () => {
    // Ingest reaches Redis through a proxy that can hold its traffic: the commit's database
    // transaction completes, its enqueue waits, and the process is killed in that window.
    const proxy = await tcpProxy(parts.redis.port);
    const ingest = await startService('ingest', {
      BALLAST_REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
      BALLAST_DATABASE_URL: parts.db.url,
      BALLAST_DATA_DIR: tempDir('crash-more-ingest'),
    });
    parts.procs.push(ingest);
    const queueRedis = connectRedis(parts.redis.url);
    const materialize = createQueue(QueueNames.featuresMaterialize, { connection: queueRedis });
    try {
      await waitHealth(ingest, IngestService.typeName);
      const client = createClient(IngestService, {
        address: ingest.address,
        deadlineMs: 60_000,
        retry: false,
      });
      await client.createDataset({ name: 'sales', schema: salesSchema() });
      await client.ingestBatch({ batch: salesBatch('sales', 0, 2_000) });
      const versionRows = () =>
        psqlValue(parts.db.url, 'SELECT id FROM ingest.versions ORDER BY number').split('\n').filter(Boolean);
      proxy.delayMs = 600_000;
      const commit = client.commitVersion({ dataset: 'sales' }).then(
        () => 'OK',
        (e: unknown) => (e instanceof RpcError ? status[e.code] : String(e)),
      );
      await until(() => versionRows().length > 0, 'the version row', ingest);
      await ingest.kill('SIGKILL');
      const callerSaw = await commit;
      client.close();
      // Drops the held traffic (the enqueue never reaches Redis), then lets Redis through again.
      proxy.cut();
      proxy.delayMs = 0;
      proxy.restore();
      const [version] = versionRows();
      const jobBefore = await materialize.getJob(`sales.${version}`);
      const pendingBefore = psqlValue(parts.db.url, 'SELECT count(*) FROM ingest.version_announcements');
      await ingest.restart();
      const restartMs = await waitHealth(ingest, IngestService.typeName, ServingStatus.SERVING, 120_000);
      const jobAfter = await materialize.getJob(`sales.${version}`);
      const counts = await materialize.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed');
      const jobs = Object.values(counts as Record<string, number>).reduce((a, b) => a + b, 0);
      // A second commit of the same records: the same version, and still one job.
      const again = createClient(IngestService, { address: ingest.address, deadlineMs: 60_000 });
      const recommit = await again.commitVersion({ dataset: 'sales' });
      again.close();
      const jobsAfterRecommit = Object.values(
        (await materialize.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed')) as Record<
          string,
          number
        >,
      ).reduce((a, b) => a + b, 0);
      const versions = versionRows();
      const pass = record({
        scenario: 'ingest: kill -9 between the version commit and its materialize job, restart',
        headline: `ingest kill -9 mid-CommitVersion: ${versions.length} version and ${jobs} materialize job after the restart (${jobBefore ? 1 : 0} before it; the start-up queued the announcement its outbox kept)`,
        injected:
          "ingest's Redis traffic held by a proxy while CommitVersion runs; SIGKILL as soon as the version row is in Postgres (its enqueue still waiting); the held traffic dropped; restart on the same database and Redis",
        measured: {
          'the caller saw': callerSaw,
          'versions in the database': versions.length,
          'materialize job for it before the restart': jobBefore ? 'yes' : 'no',
          'announcements pending in the outbox before the restart': pendingBefore,
          'restart to SERVING (ms)': restartMs,
          'materialize job for it after the restart': jobAfter ? `yes (${jobAfter.id})` : 'no',
          'jobs in features.materialize': jobs,
          'commit again: created / same version / jobs after': `${recommit.created} / ${recommit.version?.id === version} / ${jobsAfterRecommit}`,
          'announcements pending at the end': psqlValue(
            parts.db.url,
            'SELECT count(*) FROM ingest.version_announcements',
          ),
        },
        pass:
          versions.length === 1 &&
          jobAfter?.data.datasetVersion === version &&
          jobs === 1 &&
          jobsAfterRecommit === 1 &&
          recommit.version?.id === version,
      });
      expect(callerSaw).not.toBe('OK');
      expect(versions).toHaveLength(1);
      expect(jobAfter?.data).toEqual({ datasetName: 'sales', datasetVersion: version });
      expect(jobs).toBe(1);
      expect(recommit.created).toBe(false);
      expect(jobsAfterRecommit).toBe(1);
      expect(pass).toBe(true);
    } finally {
      await materialize.close();
      queueRedis.disconnect();
      await proxy.close();
    }
  }, 300_000);
});

describe('monitor', () => {
  it('kill -9 while it drains logged predictions: every job counted once, windows and actuals intact', async () => {
    const WINDOW = 60_000;
    const T0 = Math.floor(Date.now() / WINDOW) * WINDOW - 10 * WINDOW;
    const JOBS = 400;
    const ROWS = 30;
    const PREFIX = 'rel-crash-more';
    const monitor = await startService('monitor', {
      BALLAST_REDIS_URL: parts.redis.url,
      BALLAST_DATABASE_URL: parts.db.url,
      BALLAST_DATA_DIR: tempDir('crash-more-monitor'),
      BALLAST_MONITOR_QUEUE_PREFIX: PREFIX,
      BALLAST_MONITOR_WINDOW_MS: String(WINDOW),
      BALLAST_MONITOR_RETRAIN: 'false',
      BALLAST_REGISTRY_ADDR: '127.0.0.1:1',
      BALLAST_FEATURE_ADDR: '127.0.0.1:1',
      BALLAST_INGEST_ADDR: '127.0.0.1:1',
    });
    parts.procs.push(monitor);
    const queueRedis = connectRedis(parts.redis.url);
    const predictions = createQueue(QueueNames.monitorPredictions, {
      connection: queueRedis,
      prefix: PREFIX,
    });
    try {
      await waitHealth(monitor, MonitorService.typeName);
      const client = createClient(MonitorService, { address: monitor.address, deadlineMs: 30_000 });
      await client.setBaseline({
        model: 'demand',
        version: 1,
        statistics: [
          flatStatistics('price', 0, 20),
          flatStatistics('lag_units', 0, 100),
          flatStatistics('units', 0, 100, true),
        ],
      });
      const entity = (job: number, row: number) => `w${row % 3}:j${job}r${row}`;
      const job = (j: number): MonitorPredictionsJob => ({
        model: 'demand',
        version: '1',
        rows: ROWS,
        records: Array.from({ length: ROWS }, (_, r) => ({
          requestId: `j${j}r${r}`,
          time: T0 + ((j * ROWS + r) % (5 * WINDOW)),
          latencyUs: 1000,
          inputs: { price: [(j + r) % 20], lag_units: [(j * r) % 100] },
          outputs: { y: [(j + r) % 100] },
          entityKeys: [entity(j, r)],
          segments: { warehouse_id: `w${r % 3}` },
        })),
      });
      const sql = (q: string) => Number(psqlValue(parts.db.url, q));
      const processed = () => sql(`SELECT count(*) FROM monitor.processed_jobs`);
      // The first 20 jobs, then actuals for their rows (acknowledged before the kill).
      await predictions.addBulk(Array.from({ length: 20 }, (_, j) => ({ name: 'log', data: job(j) })));
      await until(() => processed() === 20, 'the first 20 jobs absorbed', monitor);
      const actuals = Array.from({ length: 20 * ROWS }, (_, i) => ({
        entityKey: entity(Math.floor(i / ROWS), i % ROWS),
        time: timestampFromMs(T0 + 6 * WINDOW),
        value: 50,
      }));
      const firstActuals = await client.recordActuals({ model: 'demand', actuals });
      client.close();
      await predictions.addBulk(
        Array.from({ length: JOBS - 20 }, (_, j) => ({ name: 'log', data: job(j + 20) })),
      );
      await until(() => processed() >= JOBS / 3, `a third of ${JOBS} jobs absorbed`, monitor);
      await monitor.kill('SIGKILL');
      const processedAtKill = processed();
      await monitor.restart();
      const restartMs = await waitHealth(monitor, MonitorService.typeName, ServingStatus.SERVING, 120_000);
      await until(
        async () => {
          const c = await predictions.getJobCounts('waiting', 'active', 'delayed');
          return (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) === 0 && processed() === JOBS;
        },
        'the queue drained',
        monitor,
      );
      const counts = await predictions.getJobCounts('completed', 'failed');
      const again = createClient(MonitorService, { address: monitor.address, deadlineMs: 30_000 });
      const counters = (await again.getMonitorStatus({})).counters;
      const resent = await again.recordActuals({ model: 'demand', actuals });
      again.close();
      const windowRows = sql(
        `SELECT coalesce(sum((hist->>'count')::bigint), 0) FROM monitor.window_stats WHERE segment = '' AND feature = 'price'`,
      );
      const logged = sql('SELECT count(*) FROM monitor.predictions');
      const sent = JOBS * ROWS;
      const pass = record({
        scenario: 'monitor: kill -9 while draining monitor.predictions, restart',
        headline: `monitor kill -9 mid-drain (${processedAtKill} of ${JOBS} jobs absorbed): after the restart ${processed()} jobs absorbed once, ${Number(counters.absorbed_records ?? 0n)} of ${sent} rows in the counters, ${windowRows} in the windows, ${logged} logged predictions; ${Number(firstActuals.matched)} actuals kept (all ${Number(resent.duplicates)} duplicates when resent)`,
        injected: `${JOBS} monitor.predictions jobs of ${ROWS} rows (Postgres, own Redis); actuals for the first 20 jobs' rows acknowledged; SIGKILL once a third of the jobs were absorbed (stalled jobs redelivered by BullMQ); restart; the actuals resent`,
        measured: {
          'jobs absorbed at the kill': processedAtKill,
          'restart to SERVING (ms)': restartMs,
          'jobs absorbed (processed_jobs) / sent': `${processed()} / ${JOBS}`,
          'queue: completed / failed': `${counts.completed} / ${counts.failed}`,
          'absorbed_records counter / rows sent': `${Number(counters.absorbed_records ?? 0n)} / ${sent}`,
          "rows in the windows (all rows, feature 'price')": windowRows,
          'logged predictions (for the actuals join)': logged,
          'actuals before the kill: matched / unmatched': `${Number(firstActuals.matched)} / ${Number(firstActuals.unmatched)}`,
          'the same actuals after the restart: matched / duplicates': `${Number(resent.matched)} / ${Number(resent.duplicates)}`,
        },
        pass:
          processed() === JOBS &&
          Number(counters.absorbed_records ?? 0n) === sent &&
          windowRows === sent &&
          logged === sent &&
          counts.failed === 0 &&
          Number(firstActuals.matched) === actuals.length &&
          Number(resent.duplicates) === actuals.length &&
          Number(resent.matched) === 0,
      });
      expect(processedAtKill).toBeLessThan(JOBS);
      expect(processed()).toBe(JOBS);
      expect(Number(counters.absorbed_records ?? 0n)).toBe(sent);
      expect(windowRows).toBe(sent);
      expect(logged).toBe(sent);
      expect(counts.failed).toBe(0);
      expect(Number(firstActuals.matched)).toBe(actuals.length);
      expect([Number(resent.matched), Number(resent.duplicates)]).toEqual([0, actuals.length]);
      expect(pass).toBe(true);
    } finally {
      await predictions.close();
      queueRedis.disconnect();
    }
  }, 300_000);
});
