import { loadavg } from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FeatureStatisticsSchema } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { AlertMetric } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { writeBenchResult } from '@ballast/grpc-kit/testing';
import type { PredictionRecord } from '@ballast/queue';
import { seededRandom } from '@ballast/sampling';
import { create } from '@bufbuild/protobuf';
import { driftMetric } from '../alert-series.js';
import { numericBaseline } from '../histogram.js';
import { buildBaseline } from '../model-baseline.js';
import { driftReport } from '../report.js';
import { absorb } from '../windows.js';

/**
 * False-alert study (`node services/monitor/dist/bench/false-alerts.js`): the reference
 * workload (warehouses × features, a window of about a hundred rows per warehouse, as the
 * demo's) over BENCH_SEEDS (20) seeds; one warehouse shifts by BENCH_SHIFT_STD (1) std on
 * every feature from window SHIFT_AT. Per drift rule: alerts in the unshifted warehouses (any
 * window; target 0) and windows from the shift until the shifted one fires (target ≤ 2).
 * BENCH_ROWS_PER_WINDOW (100,48) lists the window sizes studied.
 * The statistics and the rules' verdicts in process (no queue or store: the pipeline's own
 * cost is monitor.ts's benchmark).
 */
const here = dirname(fileURLToPath(import.meta.url));
const SEEDS = Number(process.env.BENCH_SEEDS ?? 20);
// A hundred rows per warehouse is the demo's window on an idle machine; 48 (six days) is what
// a loaded one fits in it, and where empty bins make PSI's tail heaviest.
const ROW_SIZES = (process.env.BENCH_ROWS_PER_WINDOW ?? '100,48').split(',').map(Number);
const SHIFT_STD = Number(process.env.BENCH_SHIFT_STD ?? 1);
const WAREHOUSES = ['W1', 'W2', 'W3', 'W4', 'W5', 'W6'];
const SHIFTED = 'W4';
const FEATURES = ['price', 'lag_units', 'promo_depth', 'units_7d'];
const MEANS = [10, 50, 0.2, 350];
const STDS = [2, 10, 0.05, 60];
const WINDOWS = 8;
const SHIFT_AT = 4;
const WINDOW = 60_000;
const REFERENCE_ROWS = 640;

function normalSample(seed: number, n: number, mean = 0, std = 1): number[] {
  const uniform = seededRandom(seed);
  return Array.from(
    { length: n },
    () => mean + std * Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform()),
  );
}

/** A warehouse's training statistics over 10 bins, as feature's GetFeatureStatistics gives them. */
function statistics(feature: string, values: number[], segment: string) {
  const b = numericBaseline(values, 10);
  return create(FeatureStatisticsSchema, {
    feature,
    segment,
    count: BigInt(values.length),
    mean: b.mean,
    std: b.std,
    histogram: { edges: b.edges, counts: b.counts.map(BigInt) },
  });
}

const RULES = [
  { name: 'max PSI >= 0.25 (the demo before)', metric: AlertMetric.MAX_PSI, threshold: 0.25, windows: 1 },
  {
    name: 'PSI above noise >= 0.25 (the demo at first)',
    metric: AlertMetric.PSI_ABOVE_NOISE,
    threshold: 0.25,
    windows: 1,
  },
  {
    name: 'PSI above noise >= 0.5, one window (the demo before)',
    metric: AlertMetric.PSI_ABOVE_NOISE,
    threshold: 0.5,
    windows: 1,
  },
  {
    // libs/sdk's DRIFT_THRESHOLD and DRIFT_WINDOWS: the demo's demand-drift rule.
    name: 'PSI above noise >= 0.5 for 2 windows (the demo now)',
    metric: AlertMetric.PSI_ABOVE_NOISE,
    threshold: 0.5,
    windows: 2,
  },
  {
    name: 'drift share >= 0.5 for 2 windows (default_drift)',
    metric: AlertMetric.DRIFT_SHARE,
    threshold: 0.5,
    windows: 2,
  },
];

function run(seed: number, ROWS: number) {
  const stats = [];
  for (const [w, warehouse] of WAREHOUSES.entries())
    for (const [j, f] of FEATURES.entries())
      stats.push(
        statistics(
          f,
          normalSample(seed * 1000 + w * 10 + j, REFERENCE_ROWS, MEANS[j], STDS[j]),
          `warehouse_id=${warehouse}`,
        ),
      );
  const model = buildBaseline('study', 1, stats, undefined, { windowMs: WINDOW });
  // value[rule][warehouse][window]
  const values = RULES.map(() => WAREHOUSES.map(() => [] as number[]));
  for (let t = 0; t < WINDOWS; t++) {
    const records: PredictionRecord[] = [];
    for (const [w, warehouse] of WAREHOUSES.entries()) {
      const shift = warehouse === SHIFTED && t >= SHIFT_AT ? SHIFT_STD : 0;
      const cols = FEATURES.map((_, j) =>
        normalSample(
          seed * 100_000 + t * 100 + w * 10 + j,
          ROWS,
          (MEANS[j] as number) + shift * (STDS[j] as number),
          STDS[j],
        ),
      );
      for (let i = 0; i < ROWS; i++)
        records.push({
          requestId: `${t}-${warehouse}-${i}`,
          time: t * WINDOW + i,
          latencyUs: 1000,
          inputs: Object.fromEntries(FEATURES.map((f, j) => [f, [cols[j]?.[i] as number]])),
          outputs: {},
          segments: { warehouse_id: warehouse },
        });
    }
    const windows = [...absorb(model, records).windows.values()].map((e) => ({ ...e.key, hist: e.hist }));
    const reports = driftReport(model, windows);
    for (const [r, rule] of RULES.entries())
      for (const [w, warehouse] of WAREHOUSES.entries()) {
        const report = reports.find((x) => x.segment === `warehouse_id=${warehouse}`);
        values[r]?.[w]?.push(report ? (driftMetric(rule.metric, report as never) ?? 0) : 0);
      }
  }
  return RULES.map((rule, r) => {
    // The first window from `from` at which `windows` windows in a row meet the threshold.
    const firstFiring = (list: number[], from: number) => {
      for (let t = Math.max(from, rule.windows - 1); t < list.length; t++)
        if (list.slice(t - rule.windows + 1, t + 1).every((v) => v >= rule.threshold)) return t;
      return -1;
    };
    const shiftedAt = WAREHOUSES.indexOf(SHIFTED);
    const series = (w: number) => values[r]?.[w] ?? [];
    // Unshifted warehouses at any window, and the shifted one before its shift, are false alerts.
    const falseAlerts =
      WAREHOUSES.filter((wh, w) => wh !== SHIFTED && firstFiring(series(w), 0) >= 0).length +
      (firstFiring(series(shiftedAt).slice(0, SHIFT_AT), 0) >= 0 ? 1 : 0);
    const caught = firstFiring(series(shiftedAt), SHIFT_AT);
    // Windows counted from the first shifted one (1 = caught in it).
    const delay = caught >= 0 ? caught - SHIFT_AT + 1 : null;
    const peakUnshifted = Math.max(
      ...WAREHOUSES.flatMap((wh, w) => (wh === SHIFTED ? [] : (values[r]?.[w] ?? []))),
    );
    return { falseAlerts, delay, peakUnshifted };
  });
}

const loadBefore = loadavg();
const bySize = ROW_SIZES.map((rowsPerWindow) => {
  const runs = Array.from({ length: SEEDS }, (_, s) => run(s + 1, rowsPerWindow));
  const table = RULES.map((rule, r) => {
    const rows = runs.map((x) => x[r] as ReturnType<typeof run>[number]);
    const delays = rows.map((x) => x.delay);
    const caught = delays.filter((d): d is number => d !== null);
    return {
      rule: rule.name,
      false_alerts: rows.reduce((a, x) => a + x.falseAlerts, 0),
      seeds_with_false_alerts: rows.filter((x) => x.falseAlerts > 0).length,
      caught: `${caught.length}/${SEEDS}`,
      max_windows_to_catch: caught.length === SEEDS ? Math.max(...caught) : null,
      mean_windows_to_catch: caught.length
        ? Math.round((caught.reduce((a, b) => a + b, 0) / caught.length) * 100) / 100
        : null,
      peak_value_unshifted: Math.round(Math.max(...rows.map((x) => x.peakUnshifted)) * 1000) / 1000,
    };
  });
  console.log(
    `false alerts: ${SEEDS} seeds, ${WAREHOUSES.length} warehouses x ${FEATURES.length} features, ${rowsPerWindow} rows per warehouse and window, ${REFERENCE_ROWS} reference rows per warehouse (10 bins), ${SHIFTED} shifts by ${SHIFT_STD} std from window ${SHIFT_AT + 1} of ${WINDOWS}; targets: 0 false alerts, caught within 2 windows`,
  );
  console.table(table);
  return { rowsPerWindow, table };
});
const out = writeBenchResult(here, 'monitor-alerts', {
  seeds: SEEDS,
  warehouses: WAREHOUSES.length,
  features: FEATURES.length,
  referenceRows: REFERENCE_ROWS,
  shiftStd: SHIFT_STD,
  windows: WINDOWS,
  shiftAtWindow: SHIFT_AT + 1,
  bySize,
  loadAverage: { before: loadBefore, after: loadavg() },
});
console.log(`wrote ${out}`);
