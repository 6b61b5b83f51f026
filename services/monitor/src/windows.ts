import type { PredictionRecord } from '@ballast/queue';
import { fnv1a, offer, seededRandom } from '@ballast/sampling';
import { addValue, type Baseline, emptyWindow, type WindowHistogram } from './histogram.js';
import {
  baselineFor,
  LATENCY,
  LATENCY_BASELINE,
  type ModelBaseline,
  PREDICTION,
  windowMs,
} from './model-baseline.js';
import { RESERVOIR_SIZE } from './reservoir.js';

/**
 * Turns logged prediction records into window statistics: one histogram per (window,
 * segment, feature), for all rows ('') and for the record's segment, each row in the window
 * of its event time (`rowTimes`, else the record's time), plus the predictions
 * that actuals will later join. Pure: the store adds the result to what it already holds.
 */

export interface WindowKey {
  windowStart: number;
  segment: string;
  feature: string;
}

export interface LoggedPrediction {
  entityKey: string;
  time: number;
  segment: string;
  prediction: number;
}

export interface Absorbed {
  windows: Map<string, { key: WindowKey; hist: WindowHistogram }>;
  predictions: LoggedPrediction[];
  records: number;
  /** Records whose tensors do not fit the baseline's features (skipped). */
  malformed: number;
}

/** "warehouse_id=w1,region=north" from a record's segments, fields sorted by name. */
export function segmentKey(segments: Record<string, string> | undefined): string {
  if (!segments) return '';
  return Object.keys(segments)
    .sort()
    .map((k) => `${k}=${segments[k]}`)
    .join(',');
}

export function windowKeyString(k: WindowKey): string {
  return `${k.windowStart}|${k.segment}|${k.feature}`;
}

/** Per row, the value of each feature; undefined when the record does not fit. */
function columns(
  model: ModelBaseline,
  record: PredictionRecord,
): { values: number[][]; rows: number } | undefined {
  const names = model.features;
  const inputs = record.inputs;
  if (names.every((f) => Object.hasOwn(inputs, f))) {
    const cols = names.map((f) => inputs[f] as number[]);
    const rows = cols[0]?.length ?? 0;
    return cols.every((c) => c.length === rows) ? { values: cols, rows } : undefined;
  }
  const tensorName = model.config.featuresInput || Object.keys(inputs)[0];
  const flat = tensorName !== undefined && Object.hasOwn(inputs, tensorName) ? inputs[tensorName] : undefined;
  if (!flat || flat.length === 0 || flat.length % names.length !== 0) return undefined;
  const rows = flat.length / names.length;
  const values = names.map((_, j) =>
    Array.from({ length: rows }, (_, r) => flat[r * names.length + j] as number),
  );
  return { values, rows };
}

/**
 * The record's rows by the window their event time falls in: each row's own time when the
 * record carries them (a replay of history), else the record's time for all of them.
 */
function rowsByWindow(record: PredictionRecord, rows: number, width: number): Map<number, number[]> {
  const start = (time: number) => Math.floor(time / width) * width;
  const all = Array.from({ length: rows }, (_, r) => r);
  if (!record.rowTimes) return new Map([[start(record.time), all]]);
  const windows = new Map<number, number[]>();
  for (const r of all) {
    const windowStart = start(record.rowTimes[r] as number);
    const list = windows.get(windowStart);
    if (list) list.push(r);
    else windows.set(windowStart, [r]);
  }
  return windows;
}

export function absorb(model: ModelBaseline, records: readonly PredictionRecord[]): Absorbed {
  const out: Absorbed = { windows: new Map(), predictions: [], records: 0, malformed: 0 };
  const width = windowMs(model.config);
  const randoms = new Map<string, () => number>();
  // Raw values of numeric features (and the prediction) go to the window's reservoir too.
  const sampled = (baseline: Baseline, h: WindowHistogram, id: string, v: number) => {
    addValue(baseline, h, v);
    if (baseline.kind !== 'numeric' || !Number.isFinite(v)) return;
    let random = randoms.get(id);
    if (!random) {
      random = seededRandom(fnv1a(id));
      randoms.set(id, random);
    }
    h.sample ??= [];
    offer(h.sample, h.count - 1, v, random, RESERVOIR_SIZE);
  };
  const hist = (windowStart: number, segment: string, feature: string): WindowHistogram | undefined => {
    const key = { windowStart, segment, feature };
    const id = windowKeyString(key);
    let entry = out.windows.get(id);
    if (!entry) {
      const baseline = baselineFor(model, feature, segment);
      if (!baseline) return undefined;
      entry = { key, hist: emptyWindow(baseline) };
      out.windows.set(id, entry);
    }
    return entry.hist;
  };
  for (const record of records) {
    const cols = columns(model, record);
    const outputName = model.config.predictionOutput || Object.keys(record.outputs)[0];
    const predictions = outputName !== undefined ? record.outputs[outputName] : undefined;
    if (
      !cols ||
      !Number.isFinite(record.time) ||
      (predictions && predictions.length !== cols.rows) ||
      (record.rowTimes && record.rowTimes.length !== cols.rows)
    ) {
      out.malformed++;
      continue;
    }
    out.records++;
    const segment = segmentKey(record.segments);
    const segments = segment ? ['', segment] : [''];
    for (const [windowStart, rows] of rowsByWindow(record, cols.rows, width)) {
      for (const s of segments) {
        model.features.forEach((feature, j) => {
          const h = hist(windowStart, s, feature);
          if (!h) return;
          const baseline = baselineFor(model, feature, s);
          if (!baseline) return;
          const id = windowKeyString({ windowStart, segment: s, feature });
          const values = cols.values[j] as number[];
          for (const r of rows) sampled(baseline, h, id, values[r] as number);
        });
        // The request's latency describes each of its rows, so every window they landed in counts it once.
        const latency = hist(windowStart, s, LATENCY);
        if (latency) addValue(LATENCY_BASELINE, latency, record.latencyUs / 1000);
        const p = predictions && baselineFor(model, PREDICTION, s);
        const ph = p ? hist(windowStart, s, PREDICTION) : undefined;
        if (p && ph && predictions) {
          const id = windowKeyString({ windowStart, segment: s, feature: PREDICTION });
          for (const r of rows) sampled(p, ph, id, predictions[r] as number);
        }
      }
    }
    // Actuals measure the answers callers got: a shadow's answers were never returned.
    if (record.shadow) continue;
    record.entityKeys?.forEach((entityKey, r) => {
      const prediction = predictions?.[r];
      const time = record.rowTimes?.[r] ?? record.time;
      if (entityKey && prediction !== undefined && Number.isFinite(prediction))
        out.predictions.push({ entityKey, time, segment, prediction });
    });
  }
  return out;
}

/** The q-quantile (0-1) of a numeric window histogram, interpolating inside its bin. */
export function histogramQuantile(edges: readonly number[], hist: WindowHistogram, q: number): number {
  if (hist.count === 0) return Number.NaN;
  const target = q * hist.count;
  let seen = hist.counts[0] as number;
  if (seen >= target) return hist.min;
  for (let i = 1; i < hist.counts.length - 1; i++) {
    const c = hist.counts[i] as number;
    if (seen + c >= target && c > 0) {
      const lo = edges[i - 1] as number;
      const hi = edges[i] as number;
      return Math.min(Math.max(lo + ((target - seen) / c) * (hi - lo), hist.min), hist.max);
    }
    seen += c;
  }
  return hist.max;
}
