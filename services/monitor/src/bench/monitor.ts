import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FeatureStatisticsSchema } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import {
  AlertMetric,
  AlertRuleSchema,
  AlertState,
} from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { writeBenchResult } from '@ballast/grpc-kit/testing';
import {
  connectRedis,
  createQueue,
  type MonitorPredictionsJob,
  type PredictionRecord,
  QueueNames,
} from '@ballast/queue';
import { seededNormal } from '@ballast/sampling';
import { migrate, openDatabase } from '@ballast/storage';
import { create } from '@bufbuild/protobuf';
import { durationFromMs, timestampMs } from '@bufbuild/protobuf/wkt';
import { DEFAULT_RULE_NAME } from '../alerts.js';
import { numericBaseline } from '../histogram.js';
import { migrations } from '../migrations.js';
import { buildBaseline } from '../model-baseline.js';
import { createMonitor } from '../monitor.js';
import { driftReport } from '../report.js';
import { psi } from '../stats-tests.js';
import * as store from '../store.js';
import { absorb } from '../windows.js';

/**
 * `npm run bench` for monitor:
 *  1. predictions/s absorbed end to end: `monitor.predictions` jobs of 500 one-row records
 *     (inference's flush size) through BullMQ on Redis into the stored windows (statistics per
 *     segment and feature, the join table) with alert evaluation after each job, next to the
 *     statistics alone in process, and next to the rate inference answers (its own benchmark's
 *     result, when it has run);
 *  2. detection delay: how many windows after one warehouse shifts by PSI 0.25 (on every
 *     feature) the drift rule fires — held for one window, and for two (the default rule) —
 *     through the whole pipeline, over several trials, at a few window sizes; and the false
 *     alerts (any warehouse before the shift, the others after).
 * PGlite by default; BALLAST_DATABASE_URL=postgres://... to measure on Postgres.
 */
const here = dirname(fileURLToPath(import.meta.url));
const JOBS = Number(process.env.BENCH_JOBS ?? 40);
const RECORDS_PER_JOB = 500;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const TRIALS = Number(process.env.BENCH_TRIALS ?? 5);
const ROWS_PER_WINDOW = (process.env.BENCH_WINDOW_ROWS ?? '50,100,300').split(',').map(Number);
/** The rule's `for`, in windows: 1 alerts on the first drifted window, 2 is the default rule. */
const RULE_WINDOWS = (process.env.BENCH_RULE_WINDOWS ?? '1,2').split(',').map(Number);
const WAREHOUSES = Array.from({ length: 10 }, (_, i) => `w${i + 1}`);
const WINDOW = 60_000;
/** As the service's default (BALLAST_MONITOR_EVALUATE_INTERVAL_MS). */
const EVALUATE_INTERVAL_MS = Number(process.env.BENCH_EVALUATE_INTERVAL_MS ?? 1_000);
const T0 = Date.UTC(2026, 0, 5);

const FEATURES = ['price', 'lag_units', 'promo_depth'];
const MEANS = [10, 50, 0.2];
const STDS = [2, 10, 0.05];

function statistics() {
  const draw = seededNormal(1);
  const out = [];
  const all: number[][] = FEATURES.map(() => []);
  const stat = (feature: string, values: number[], segment: string, isLabel = false) => {
    const b = numericBaseline(values, 10);
    return create(FeatureStatisticsSchema, {
      feature,
      isLabel,
      segment,
      count: BigInt(values.length),
      mean: b.mean,
      std: b.std,
      histogram: { edges: b.edges, counts: b.counts.map(BigInt) },
    });
  };
  for (const w of WAREHOUSES) {
    const cols = FEATURES.map((_, j) =>
      Array.from({ length: 2000 }, () => (MEANS[j] as number) + (STDS[j] as number) * draw()),
    );
    for (const [j, c] of cols.entries()) {
      all[j]?.push(...c);
      out.push(stat(FEATURES[j] as string, c, `warehouse_id=${w}`));
    }
    out.push(stat('units', cols[1] as number[], `warehouse_id=${w}`, true));
  }
  for (const [j, c] of all.entries()) out.push(stat(FEATURES[j] as string, c, ''));
  out.push(stat('units', all[1] as number[], '', true));
  return out;
}

function windowRecords(
  start: number,
  perWarehouse: number,
  seed: number,
  shift: number,
  shifted: string[],
): PredictionRecord[] {
  const draw = seededNormal(seed);
  const out: PredictionRecord[] = [];
  for (const w of WAREHOUSES) {
    const s = shifted.includes(w) ? shift : 0;
    for (let i = 0; i < perWarehouse; i++) {
      const values = FEATURES.map((_, j) => (MEANS[j] as number) + (STDS[j] as number) * (draw() + s));
      out.push({
        requestId: `${seed}-${w}-${i}`,
        time: start + Math.floor((i / perWarehouse) * (WINDOW - 1)),
        latencyUs: 800 + Math.floor(400 * Math.abs(draw())),
        inputs: Object.fromEntries(FEATURES.map((f, j) => [f, [values[j] as number]])),
        outputs: { y: [values[1] as number] },
        entityKeys: [`${w}:sku${i}`],
        segments: { warehouse_id: w },
      });
    }
  }
  return out;
}

/** The mean shift (in standard deviations) whose PSI against the baseline's bins is `target`. */
function shiftForPsi(target: number): { shift: number; psi: number } {
  const base = numericBaseline(
    (() => {
      const d = seededNormal(3);
      return Array.from({ length: 20_000 }, () => d());
    })(),
    10,
  );
  const baseline = buildBaseline(
    'cal',
    1,
    [
      create(FeatureStatisticsSchema, {
        feature: 'x',
        histogram: { edges: base.edges, counts: base.counts.map(BigInt) },
        std: base.std,
        mean: base.mean,
      }),
    ],
    undefined,
  );
  const psiAt = (shift: number) => {
    const d = seededNormal(4);
    const records: PredictionRecord[] = Array.from({ length: 200_000 }, (_, i) => ({
      requestId: String(i),
      time: 0,
      latencyUs: 0,
      inputs: { x: [d() + shift] },
      outputs: {},
    }));
    const w = absorb(baseline, records);
    const hist = [...w.windows.values()].find((e) => e.key.feature === 'x')?.hist;
    return psi([0, ...base.counts, 0], hist?.counts ?? []);
  };
  let lo = 0;
  let hi = 2;
  for (let i = 0; i < 30; i++) {
    const mid = (lo + hi) / 2;
    if (psiAt(mid) < target) lo = mid;
    else hi = mid;
  }
  return { shift: (lo + hi) / 2, psi: psiAt((lo + hi) / 2) };
}

const dir = await mkdtemp(join(tmpdir(), 'ballast-monitor-bench-'));
const url = process.env.BALLAST_DATABASE_URL;
const schema = `bench_monitor_${randomBytes(3).toString('hex')}`;
const sql = url
  ? await openDatabase({ url, schema })
  : await openDatabase({ dataDir: dir, schema: 'monitor' });
await migrate(sql, migrations);
const redis = connectRedis(process.env.BALLAST_REDIS_URL ?? 'redis://127.0.0.1:6379');
const prefix = `bench-monitor-${randomBytes(3).toString('hex')}`;
const loadBefore = loadavg();
const monitor = createMonitor({
  sql: () => sql,
  connection: redis,
  prefix,
  settings: {
    windowMs: WINDOW,
    evaluateIntervalMs: EVALUATE_INTERVAL_MS,
    retrain: { enabled: false, cooldownMs: 0, maxPerWindow: 1, rateWindowMs: 1 },
  },
});
const predictions = createQueue(QueueNames.monitorPredictions, { connection: redis, prefix });
const stats = statistics();
const setBaseline = (model: string) =>
  monitor.service.setBaseline(
    { model, version: 1, statistics: stats } as never,
    { signal: new AbortController().signal } as never,
  ) as Promise<unknown>;

async function drain(): Promise<void> {
  for (;;) {
    const c = await predictions.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    if (Object.values(c).every((n) => n === 0)) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  await monitor.idle();
}

// 1. Absorption, end to end.
await setBaseline('throughput');
const throughput = [];
for (let round = 0; round < ROUNDS + 1; round++) {
  const jobs: MonitorPredictionsJob[] = [];
  for (let j = 0; j < JOBS; j++) {
    const records = windowRecords(
      T0 + round * WINDOW,
      RECORDS_PER_JOB / WAREHOUSES.length,
      round * 1000 + j,
      0,
      [],
    );
    jobs.push({ model: 'throughput', version: '1', rows: records.length, records });
  }
  const started = performance.now();
  const cpu = process.cpuUsage();
  await predictions.addBulk(jobs.map((data) => ({ name: 'log', data })));
  await drain();
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  // The first round warms up (JIT, the table's first pages).
  if (round > 0)
    throughput.push({
      round,
      predictions: JOBS * RECORDS_PER_JOB,
      seconds: Math.round(seconds * 100) / 100,
      predictions_per_s: Math.round((JOBS * RECORDS_PER_JOB) / seconds),
      process_cpu_percent: Math.round(((used.user + used.system) / 1e6 / seconds) * 100),
    });
}
const endToEnd =
  throughput.map((r) => r.predictions_per_s).sort((a, b) => a - b)[Math.floor(throughput.length / 2)] ?? 0;

// The statistics alone (absorb + drift report of every segment), in process.
const baseline = await store.getBaseline(sql, 'throughput', 1);
if (!baseline) throw new Error('no baseline');
const records = windowRecords(T0, 1000, 7, 0, []);
let absorbed = 0;
const t0 = performance.now();
while (performance.now() - t0 < 3_000) {
  absorb(baseline, records);
  absorbed += records.length;
}
const statsPerS = Math.round(absorbed / ((performance.now() - t0) / 1000));
const windows = [...absorb(baseline, records).windows.values()].map((e) => ({ ...e.key, hist: e.hist }));
const r0 = performance.now();
let reports = 0;
while (performance.now() - r0 < 1_000) {
  driftReport(baseline, windows);
  reports++;
}
const driftReportMs = Math.round(((performance.now() - r0) / reports) * 1000) / 1000;

// 2. Detection delay for a PSI-0.25 shift of one warehouse.
const { shift, psi: calibratedPsi } = shiftForPsi(0.25);
const SHIFT_AT = 3;
const MAX_WINDOWS = 8;
const delay = [];
for (const ruleWindows of RULE_WINDOWS)
  for (const perWarehouse of ROWS_PER_WINDOW) {
    const delays: (number | null)[] = [];
    let falseAlarms = 0;
    let segmentWindows = 0;
    for (let trial = 0; trial < TRIALS; trial++) {
      const model = `delay-${ruleWindows}-${perWarehouse}-${trial}`;
      await setBaseline(model);
      // The default rule, asked to hold for `ruleWindows` windows in a row.
      await monitor.alerts.putRule(
        create(AlertRuleSchema, {
          model,
          name: DEFAULT_RULE_NAME,
          metric: AlertMetric.DRIFT_SHARE,
          threshold: 0.5,
          for: durationFromMs(ruleWindows * WINDOW),
          segment: '*',
        }),
      );
      let fired: number | null = null;
      for (let w = 0; w < MAX_WINDOWS && fired === null; w++) {
        const recs = windowRecords(
          T0 + w * WINDOW,
          perWarehouse,
          10_000 * trial + w + perWarehouse,
          shift,
          w >= SHIFT_AT ? ['w3'] : [],
        );
        await predictions.add('log', { model, version: '1', rows: recs.length, records: recs });
        await drain();
        const firing = await monitor.alerts.list(model, AlertState.FIRING);
        // An alert on w3 before its shift is a false one; after it, the detection.
        if (
          firing.some(
            (a) =>
              a.segment === 'warehouse_id=w3' &&
              timestampMs(a.activeSince as never) >= T0 + SHIFT_AT * WINDOW,
          )
        )
          fired = w - SHIFT_AT + 1;
        segmentWindows += w >= SHIFT_AT ? WAREHOUSES.length - 1 : WAREHOUSES.length;
      }
      falseAlarms += (await monitor.alerts.list(model)).filter(
        (a) =>
          a.segment.startsWith('warehouse_id=') &&
          (a.segment !== 'warehouse_id=w3' || timestampMs(a.activeSince as never) < T0 + SHIFT_AT * WINDOW),
      ).length;
      delays.push(fired);
    }
    const found = delays.filter((d): d is number => d !== null);
    delay.push({
      rule_windows_in_a_row: ruleWindows,
      rows_per_warehouse_window: perWarehouse,
      trials: TRIALS,
      detected: found.length,
      mean_windows_to_alert: found.length
        ? Math.round((found.reduce((a, b) => a + b, 0) / found.length) * 100) / 100
        : null,
      max_windows_to_alert: found.length ? Math.max(...found) : null,
      false_alerts: falseAlarms,
      unshifted_segment_windows: segmentWindows,
    });
  }

await monitor.close();
await predictions.obliterate({ force: true }).catch(() => {});
await monitor.trainingQueue.obliterate({ force: true }).catch(() => {});
await predictions.close();
redis.disconnect();
if (url) await sql.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
await sql.close();
await rm(dir, { recursive: true, force: true });

// Inference's answer rate, from its own benchmark's result when it has run on this machine.
let inferencePerS: number | null = null;
let root = resolve(here);
while (!existsSync(join(root, 'nx.json')) && dirname(root) !== root) root = dirname(root);
const inferenceResult = join(root, 'test', 'bench', 'results', 'inference.json');
if (existsSync(inferenceResult)) {
  const r = JSON.parse(readFileSync(inferenceResult, 'utf8')) as { table?: { batched_per_s?: number }[] };
  inferencePerS = Math.max(0, ...(r.table ?? []).map((x) => x.batched_per_s ?? 0)) || null;
}

const backend = url ? 'postgres' : 'pglite';
console.log(
  `monitor absorption: ${JOBS} jobs x ${RECORDS_PER_JOB} one-row records per round, ${WAREHOUSES.length} warehouses, ${FEATURES.length} features, ${backend}`,
);
console.table(throughput);
console.table([
  {
    end_to_end_predictions_per_s: endToEnd,
    statistics_only_predictions_per_s: statsPerS,
    drift_report_ms_per_window_all_segments: driftReportMs,
    inference_max_predictions_per_s: inferencePerS ?? 'run inference bench first',
    monitor_vs_inference: inferencePerS ? Math.round((endToEnd / inferencePerS) * 100) / 100 : null,
  },
]);
console.log(
  `detection delay: one warehouse of ${WAREHOUSES.length} shifts by ${shift.toFixed(3)} std on every feature (PSI ${calibratedPsi.toFixed(3)}), the default rule (drift share >= 0.5) held for 1 or 2 windows, windows counted from the first shifted one`,
);
console.table(delay);
const out = writeBenchResult(here, 'monitor', {
  backend,
  absorption: {
    jobs: JOBS,
    recordsPerJob: RECORDS_PER_JOB,
    rounds: throughput,
    endToEndPerS: endToEnd,
    statisticsOnlyPerS: statsPerS,
    driftReportMs,
  },
  inferenceMaxPerS: inferencePerS,
  detection: { shiftStd: shift, psi: calibratedPsi, shiftAtWindow: SHIFT_AT, rows: delay },
  loadAverage: { before: loadBefore, after: loadavg() },
});
console.log(`wrote ${out}`);
