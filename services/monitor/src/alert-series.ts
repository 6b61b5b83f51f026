import { AlertMetric, type AlertRule } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import type { Sql } from '@ballast/storage';
import { timestampMs } from '@bufbuild/protobuf/wkt';
import type { Point, Series } from './alert-evaluator.js';
import { durationMs, type ModelBaseline, windowMs } from './model-baseline.js';
import { driftReport } from './report.js';
import { addSums, type ErrorKey, type ErrorSums, newestErrorWindow, readErrors } from './store/errors.js';
import { newestWindow, readWindows, type StoredWindow } from './store/windows.js';
import type { BaselineCache } from './worker.js';

/**
 * The values a rule is judged on, read from the stored windows: a drift metric of the
 * version serving (the one with the newest window), or an error metric over every version
 * that served in a window. Only the rule's `for` and a few windows more are read.
 */

/** Rows a window needs before its null rate counts. */
const MIN_ROWS_FOR_RATES = 30;

/** Windows looked back over beyond the rule's `for`. */
const EXTRA_WINDOWS = 3;

type WindowReport = ReturnType<typeof driftReport>[number];

export interface AlertSeriesOptions {
  sql: () => Sql;
  baselines: BaselineCache;
  /** Minimum joined actuals in a window for an error metric to count; default 1. */
  minErrorCount?: number | undefined;
}

function isDriftMetric(m: AlertMetric): boolean {
  return (
    m === AlertMetric.DRIFT_SHARE ||
    m === AlertMetric.MAX_PSI ||
    m === AlertMetric.PSI_ABOVE_NOISE ||
    m === AlertMetric.LATENCY_P99_MS ||
    m === AlertMetric.OUT_OF_RANGE_SHARE ||
    m === AlertMetric.NULL_RATE
  );
}

export class AlertSeries {
  readonly #reports = new Map<string, { baseline: ModelBaseline; signature: string; report: WindowReport }>();

  constructor(private readonly options: AlertSeriesOptions) {}

  /** Undefined: the model has no windows (or no baseline for them) yet. */
  of(rule: AlertRule): Promise<Series | undefined> {
    return isDriftMetric(rule.metric) ? this.drift(rule) : this.errors(rule);
  }

  private async drift(rule: AlertRule): Promise<Series | undefined> {
    const sql = this.options.sql();
    const newest = await newestWindow(sql, rule.model);
    if (!newest) return undefined;
    const baseline = await this.options.baselines.get(rule.model, newest.version);
    if (!baseline) return undefined;
    const width = windowMs(baseline.config);
    const lookback = durationMs(rule.for, 0) + EXTRA_WINDOWS * width;
    const windows = await readWindows(sql, {
      model: rule.model,
      version: newest.version,
      start: newest.windowStart - lookback,
      segment: rule.segment === '*' ? undefined : rule.segment,
    });
    const points = new Map<string, Point[]>();
    for (const w of this.reports(baseline, windows)) {
      const value = driftMetric(rule.metric, w);
      if (value === undefined) continue;
      const seg = w.segment ?? '';
      const list = points.get(seg) ?? [];
      list.push({ windowStart: timestampMs(w.windowStart as never), value, version: baseline.version });
      points.set(seg, list);
    }
    return { points, width, segmented: windows.some((w) => (w.segment ?? '') !== '') };
  }

  /**
   * Drift reports per window and segment, remembered while the window's counts and the
   * baseline stay the same: an evaluation recomputes only the windows new data reached.
   */
  private reports(baseline: ModelBaseline, windows: StoredWindow[]): WindowReport[] {
    const groups = new Map<string, StoredWindow[]>();
    for (const w of windows) {
      const id = `${baseline.model}\u0000${baseline.version}\u0000${w.windowStart}\u0000${w.segment}`;
      const list = groups.get(id);
      if (list) list.push(w);
      else groups.set(id, [w]);
    }
    const out: WindowReport[] = [];
    for (const [id, group] of groups) {
      const signature = group.map((w) => `${w.feature}:${w.hist.count}:${w.hist.nulls}`).join(',');
      const hit = this.#reports.get(id);
      if (hit && hit.baseline === baseline && hit.signature === signature) {
        out.push(hit.report);
        continue;
      }
      const report = driftReport(baseline, group)[0];
      if (!report) continue;
      if (this.#reports.size >= 20_000) this.#reports.clear();
      this.#reports.set(id, { baseline, signature, report });
      out.push(report);
    }
    return out;
  }

  private async errors(rule: AlertRule): Promise<Series | undefined> {
    const sql = this.options.sql();
    const newest = await newestErrorWindow(sql, rule.model);
    if (!newest) return undefined;
    const baseline = await this.options.baselines.get(rule.model, newest.version);
    const width = baseline ? windowMs(baseline.config) : 3_600_000;
    const lookback = durationMs(rule.for, 0) + EXTRA_WINDOWS * width;
    const sums = await readErrors(sql, {
      model: rule.model,
      version: 0,
      start: newest.windowStart - lookback,
      segment: rule.segment === '*' ? undefined : rule.segment,
    });
    // Versions that served in the same window are added together.
    const merged = new Map<string, { key: ErrorKey; s: ErrorSums }>();
    for (const [key, s] of sums) {
      const id = `${key.windowStart}|${key.segment}`;
      const m = merged.get(id);
      if (!m) merged.set(id, { key: { ...key }, s: { ...s } });
      else {
        m.key.version = Math.max(m.key.version, key.version);
        addSums(m.s, s);
      }
    }
    const min = this.options.minErrorCount ?? 1;
    const points = new Map<string, Point[]>();
    for (const { key, s } of [...merged.values()].sort((a, b) => a.key.windowStart - b.key.windowStart)) {
      if (s.n < min) continue;
      const value = errorMetric(rule.metric, s);
      if (value === undefined || !Number.isFinite(value)) continue;
      const list = points.get(key.segment) ?? [];
      list.push({ windowStart: key.windowStart, value, version: key.version });
      points.set(key.segment, list);
    }
    return { points, width, segmented: [...merged.values()].some(({ key }) => key.segment !== '') };
  }
}

export function driftMetric(
  metric: AlertMetric,
  w: {
    driftShare?: number;
    features?: {
      insufficient?: boolean;
      isPrediction?: boolean;
      psi?: number;
      psiNoise?: number;
      count?: bigint;
      outOfRange?: bigint;
      nullCount?: bigint;
      nullRate?: number;
    }[];
    latencyP99Ms?: number;
    drifted?: boolean;
  },
): number | undefined {
  const judged = (w.features ?? []).filter((f) => !f.insufficient && !f.isPrediction);
  switch (metric) {
    case AlertMetric.DRIFT_SHARE:
      return judged.length === 0 ? undefined : (w.driftShare ?? 0);
    case AlertMetric.MAX_PSI:
      return judged.length === 0 ? undefined : Math.max(...judged.map((f) => f.psi ?? 0));
    case AlertMetric.PSI_ABOVE_NOISE:
      return judged.length === 0
        ? undefined
        : Math.max(0, ...judged.map((f) => (f.psi ?? 0) - (f.psiNoise ?? 0)));
    case AlertMetric.LATENCY_P99_MS:
      return w.latencyP99Ms !== undefined && Number.isFinite(w.latencyP99Ms) ? w.latencyP99Ms : undefined;
    case AlertMetric.OUT_OF_RANGE_SHARE: {
      // Every feature with enough values, the prediction included (its outliers count).
      const enough = (w.features ?? []).filter((f) => !f.insufficient);
      return enough.length === 0
        ? undefined
        : Math.max(...enough.map((f) => Number(f.outOfRange ?? 0n) / Math.max(Number(f.count ?? 0n), 1)));
    }
    case AlertMetric.NULL_RATE: {
      // Nulls leave too few values for a drift verdict, so rows (values and nulls) decide here.
      const rows = (w.features ?? []).filter(
        (f) => !f.isPrediction && Number(f.count ?? 0n) + Number(f.nullCount ?? 0n) >= MIN_ROWS_FOR_RATES,
      );
      return rows.length === 0 ? undefined : Math.max(...rows.map((f) => f.nullRate ?? 0));
    }
    default:
      return undefined;
  }
}

function errorMetric(metric: AlertMetric, s: ErrorSums): number | undefined {
  switch (metric) {
    case AlertMetric.MAE:
      return s.sumAbs / s.n;
    case AlertMetric.RMSE:
      return Math.sqrt(s.sumSq / s.n);
    case AlertMetric.MAPE:
      return s.nApe ? s.sumApe / s.nApe : undefined;
    case AlertMetric.ERROR_RATE:
      return 1 - s.correct / s.n;
    default:
      return undefined;
  }
}
