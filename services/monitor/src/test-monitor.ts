import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type FeatureStatistics,
  FeatureStatisticsSchema,
} from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { MonitorService } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { createClient, type GrpcServer, type ServiceClient, serve, startGrpcServer } from '@ballast/grpc-kit';
import {
  type BallastQueue,
  connectRedis,
  createQueue,
  type MonitorPredictionsJob,
  type PredictionRecord,
  QueueNames,
  type RedisConnection,
} from '@ballast/queue';
import { seededNormal } from '@ballast/sampling';
import { migrate, openDatabase, type Sql, type SqlKind } from '@ballast/storage';
import { create } from '@bufbuild/protobuf';
import { numericBaseline } from './histogram.js';
import { migrations } from './migrations.js';
import { createMonitor, type Monitor, type MonitorOptions } from './monitor.js';
import { normalSample } from './test-support.js';

/**
 * A real monitor for tests: its parts on a grpc-js server over loopback, a real Postgres
 * schema or a PGlite directory, a real Redis with a key prefix of its own.
 */

export const TEST_DATABASE_URL =
  process.env.BALLAST_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const quiet = { info() {}, warn() {}, error() {} };

export interface TestMonitor {
  monitor: Monitor;
  client: ServiceClient<typeof MonitorService>;
  sql: Sql;
  redis: RedisConnection;
  prefix: string;
  predictions: BallastQueue<'monitor.predictions'>;
  /** Adds prediction jobs and waits until the worker has absorbed them and alerts are evaluated. */
  log(jobs: MonitorPredictionsJob[]): Promise<void>;
  /** Waits until the predictions queue is empty and alert evaluation idle. */
  drain(): Promise<void>;
  /** Stops the server, worker and queues; keeps the database unless `drop`. */
  close(drop?: boolean): Promise<void>;
}

export interface TestMonitorOptions
  extends Partial<Pick<MonitorOptions, 'settings' | 'lineage' | 'now' | 'resolveBaseline' | 'operations'>> {
  /** Reuse a database (a restart); else a fresh one. */
  reuse?: { kind: SqlKind; dir: string; schema: string; prefix: string };
}

export async function startTestMonitor(
  kind: SqlKind,
  options: TestMonitorOptions = {},
): Promise<TestMonitor & { reuse: NonNullable<TestMonitorOptions['reuse']> }> {
  const reuse = options.reuse ?? {
    kind,
    dir: await mkdtemp(join(tmpdir(), 'ballast-monitor-test-')),
    schema: `t_monitor_${randomBytes(4).toString('hex')}`,
    prefix: `t-monitor-${randomBytes(4).toString('hex')}`,
  };
  const sql =
    kind === 'postgres'
      ? await openDatabase({ url: TEST_DATABASE_URL, schema: reuse.schema })
      : await openDatabase({ dataDir: reuse.dir, schema: 'monitor' });
  await migrate(sql, migrations);
  const redis = connectRedis('redis://127.0.0.1:6379');
  const monitor = createMonitor({
    sql: () => sql,
    connection: redis,
    prefix: reuse.prefix,
    ...(options.settings ? { settings: options.settings } : {}),
    ...(options.lineage ? { lineage: options.lineage } : {}),
    ...(options.now ? { now: options.now } : {}),
    ...(options.resolveBaseline ? { resolveBaseline: options.resolveBaseline } : {}),
    ...(options.operations ? { operations: options.operations } : {}),
    onError: (err) => console.error('alert evaluation failed', err),
  });
  const server: GrpcServer = await startGrpcServer({
    services: [serve(MonitorService, monitor.service)],
    host: '127.0.0.1',
    port: 0,
    log: quiet,
    shutdownGraceMs: 1_000,
  });
  server.setReady(true);
  const client = createClient(MonitorService, { address: `127.0.0.1:${server.port}`, deadlineMs: 60_000 });
  const predictions = createQueue(QueueNames.monitorPredictions, { connection: redis, prefix: reuse.prefix });
  const drain = async () => {
    for (;;) {
      const c = await predictions.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
      if (Object.values(c).every((n) => n === 0)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await monitor.idle();
  };
  return {
    monitor,
    client,
    sql,
    redis,
    prefix: reuse.prefix,
    predictions,
    reuse,
    drain,
    async log(jobs) {
      await predictions.addBulk(jobs.map((data) => ({ name: 'log', data })));
      await drain();
    },
    async close(drop = true) {
      client.close();
      await server.shutdown();
      await monitor.close();
      await predictions.close();
      if (drop) {
        await predictions.obliterate({ force: true }).catch(() => {});
        await monitor.trainingQueue.obliterate({ force: true }).catch(() => {});
        if (kind === 'postgres') await sql.exec(`DROP SCHEMA IF EXISTS "${reuse.schema}" CASCADE`);
      }
      await sql.close();
      redis.disconnect();
      if (drop) await rm(reuse.dir, { recursive: true, force: true });
    },
  };
}

/** Feature statistics of `values` over all rows ('') or one segment, as feature's GetFeatureStatistics gives them. */
export function statistics(
  feature: string,
  values: number[],
  segment = '',
  isLabel = false,
  bins = 10,
): FeatureStatistics {
  const b = numericBaseline(values, bins);
  return create(FeatureStatisticsSchema, {
    feature,
    isLabel,
    segment,
    count: BigInt(values.length),
    nullCount: 0n,
    mean: b.mean,
    std: b.std,
    min: b.edges[0] as number,
    max: b.edges[b.edges.length - 1] as number,
    histogram: { edges: b.edges, counts: b.counts.map(BigInt) },
  });
}

/** One logged request per row: inputs by feature name, one output, the row's entity and segment. */
export function records(
  rows: {
    time: number;
    values: Record<string, number>;
    prediction: number;
    entity?: string;
    segment?: Record<string, string>;
    latencyUs?: number;
  }[],
): PredictionRecord[] {
  return rows.map((r, i) => ({
    requestId: `r${i}`,
    time: r.time,
    latencyUs: r.latencyUs ?? 1000,
    inputs: Object.fromEntries(Object.entries(r.values).map(([k, v]) => [k, [v]])),
    outputs: { y: [r.prediction] },
    ...(r.entity ? { entityKeys: [r.entity] } : {}),
    ...(r.segment ? { segments: r.segment } : {}),
  }));
}

export const T0 = Date.UTC(2026, 0, 5);
export const WINDOW = 60_000;
export const SEGMENTS = ['w1', 'w2', 'w3'];

/** Training statistics of a retail model: price ~ N(10, 2), lag_units ~ N(50, 10), label ~ N(50, 10), per warehouse. */
export function retailStatistics(seed = 1) {
  const out = [];
  const all: Record<string, number[]> = { price: [], lag_units: [], units: [] };
  SEGMENTS.forEach((w, i) => {
    const cols = {
      price: normalSample(seed + i * 10, 2000, 10, 2),
      lag_units: normalSample(seed + i * 10 + 1, 2000, 50, 10),
      units: normalSample(seed + i * 10 + 2, 2000, 50, 10),
    };
    for (const [f, v] of Object.entries(cols)) {
      all[f]?.push(...v);
      out.push(statistics(f, v, `warehouse_id=${w}`, f === 'units'));
    }
  });
  for (const [f, v] of Object.entries(all)) out.push(statistics(f, v, '', f === 'units'));
  return out;
}

/** `n` logged rows per warehouse in the window starting at `start`; warehouses in `shifted` move by +1.5 std. */
export function traffic(
  start: number,
  n: number,
  seed: number,
  shifted: string[] = [],
  model = 'demand',
  version = '1',
): MonitorPredictionsJob {
  const draw = seededNormal(seed);
  const rows = [];
  for (const w of SEGMENTS) {
    const shift = shifted.includes(w) ? 1.5 : 0;
    for (let i = 0; i < n; i++) {
      const lag = 50 + 10 * (draw() + shift);
      rows.push({
        time: start + Math.floor((i / n) * (WINDOW - 1)),
        values: { price: 10 + 2 * (draw() + shift), lag_units: lag },
        prediction: lag,
        entity: `${w}:sku${i}`,
        segment: { warehouse_id: w },
      });
    }
  }
  return { model, version, rows: rows.length, records: records(rows) };
}
