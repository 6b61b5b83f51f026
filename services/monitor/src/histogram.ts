/**
 * Bounded-memory statistics of one feature (or prediction) in one window and segment: counts
 * over the baseline's fixed bins, plus count, nulls, sum, sum of squares, min and max. Merging
 * two is adding them, so a window is the same whether its records came in one job or many.
 */

import { fnv1a, mergeSamples, seededRandom } from '@ballast/sampling';
import { RESERVOIR_SIZE } from './reservoir.js';

/** The reference a window is binned against (from feature statistics, or declared). */
export type Baseline = NumericBaseline | CategoricalBaseline;

export interface NumericBaseline {
  kind: 'numeric';
  /** Equal- or unequal-width edges, ascending; bins are [e_i, e_i+1), the last one closed. */
  edges: number[];
  /** One per bin (edges.length - 1). */
  counts: number[];
  nulls: number;
  mean: number;
  std: number;
}

export interface CategoricalBaseline {
  kind: 'categorical';
  /** The values the reference holds, each a category. */
  categories: number[];
  counts: number[];
  nulls: number;
}

/**
 * A window's histogram. For a numeric baseline `counts` is [below the baseline's range,
 * ...one per baseline bin, above it]; for a categorical one [...one per category, unseen].
 */
export interface WindowHistogram {
  counts: number[];
  count: number;
  nulls: number;
  sum: number;
  sumSq: number;
  min: number;
  max: number;
  /**
   * A uniform sample (reservoir.ts) of the raw values counted, numeric features only: bins
   * alone understate KS, so raw-sample statistics are computed on it.
   */
  sample?: number[];
}

/** How many window bins a baseline needs (its own plus the out-of-range or unseen ones). */
export function windowBins(baseline: Baseline): number {
  return baseline.kind === 'numeric' ? baseline.counts.length + 2 : baseline.categories.length + 1;
}

export function emptyWindow(baseline: Baseline): WindowHistogram {
  return {
    counts: new Array<number>(windowBins(baseline)).fill(0),
    count: 0,
    nulls: 0,
    sum: 0,
    sumSq: 0,
    min: Number.POSITIVE_INFINITY,
    max: Number.NEGATIVE_INFINITY,
  };
}

/** The window bin of `value`: 0 below the first edge, edges.length above the last. */
export function numericBin(edges: readonly number[], value: number): number {
  const last = edges.length - 1;
  if (value < (edges[0] as number)) return 0;
  if (value > (edges[last] as number)) return edges.length;
  if (value === edges[last]) {
    // The closed last bin; with repeated edges (a constant baseline: every edge equal) the
    // first bin that holds the value, which is where feature's statistics counted it.
    let i = 0;
    while (i < last - 1 && (edges[i + 1] as number) < value) i++;
    return i + 1;
  }
  // Largest i with edges[i] <= value, by bisection; bin i is window bin i + 1.
  let lo = 0;
  let hi = last;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if ((edges[mid] as number) <= value) lo = mid;
    else hi = mid;
  }
  return lo + 1;
}

export function categoryBin(categories: readonly number[], value: number): number {
  const index = categories.indexOf(value);
  return index < 0 ? categories.length : index;
}

/** Adds one value (NaN, null and ±Infinity are nulls). */
export function addValue(
  baseline: Baseline,
  window: WindowHistogram,
  value: number | null | undefined,
): void {
  if (value === null || value === undefined || !Number.isFinite(value)) {
    window.nulls++;
    return;
  }
  const bin =
    baseline.kind === 'numeric' ? numericBin(baseline.edges, value) : categoryBin(baseline.categories, value);
  window.counts[bin] = (window.counts[bin] as number) + 1;
  window.count++;
  window.sum += value;
  window.sumSq += value * value;
  if (value < window.min) window.min = value;
  if (value > window.max) window.max = value;
}

/** Adds `from` into `into` (same baseline). */
export function mergeWindow(into: WindowHistogram, from: WindowHistogram): void {
  if (into.counts.length !== from.counts.length)
    throw new RangeError(`window bins differ: ${into.counts.length} vs ${from.counts.length}`);
  if (into.sample || from.sample) {
    // Seeded by what both hold, so replaying the same jobs merges to the same sample.
    const random = seededRandom(fnv1a(`${into.count}|${from.count}|${into.sum}|${from.sum}`));
    into.sample = mergeSamples(
      into.sample ?? [],
      into.count,
      from.sample ?? [],
      from.count,
      random,
      RESERVOIR_SIZE,
    );
  }
  for (let i = 0; i < into.counts.length; i++)
    into.counts[i] = (into.counts[i] as number) + (from.counts[i] as number);
  into.count += from.count;
  into.nulls += from.nulls;
  into.sum += from.sum;
  into.sumSq += from.sumSq;
  into.min = Math.min(into.min, from.min);
  into.max = Math.max(into.max, from.max);
}

/** The baseline's counts laid out like a window's (zero outside its range, none unseen). */
export function baselineCounts(baseline: Baseline): number[] {
  return [...(baseline.kind === 'numeric' ? [0] : []), ...baseline.counts, 0];
}

export function baselineRows(baseline: Baseline): number {
  return baseline.counts.reduce((a, b) => a + b, 0);
}

/**
 * A position per window bin, for distances that need one (Wasserstein): bin midpoints, and
 * half a bin beyond the range for the out-of-range bins; category values, in sorted order
 * (with the unseen bin after the largest).
 */
export function binPositions(baseline: Baseline): number[] {
  if (baseline.kind === 'categorical') {
    const top = Math.max(...baseline.categories);
    return [...baseline.categories, top + 1];
  }
  const e = baseline.edges;
  const first = (e[1] as number) - (e[0] as number);
  const lastWidth = (e[e.length - 1] as number) - (e[e.length - 2] as number);
  const mids = e.slice(0, -1).map((lo, i) => (lo + (e[i + 1] as number)) / 2);
  return [(e[0] as number) - first / 2, ...mids, (e[e.length - 1] as number) + lastWidth / 2];
}

export function windowMean(window: WindowHistogram): number {
  return window.count === 0 ? Number.NaN : window.sum / window.count;
}

/** A numeric baseline of `bins` equal-width bins over the values' range (NaN are nulls). */
export function numericBaseline(values: readonly number[], bins = 10): NumericBaseline {
  const finite = values.filter((v) => Number.isFinite(v));
  const min = Math.min(...finite);
  const max = Math.max(...finite);
  const width = (max - min) / bins || 1;
  const edges = Array.from({ length: bins + 1 }, (_, i) => (i === bins ? max : min + i * width));
  const counts = new Array<number>(bins).fill(0);
  let sum = 0;
  let sumSq = 0;
  for (const v of finite) {
    const bin = numericBin(edges, v) - 1;
    counts[bin] = (counts[bin] as number) + 1;
    sum += v;
    sumSq += v * v;
  }
  const mean = sum / finite.length;
  const std = Math.sqrt(Math.max(sumSq / finite.length - mean * mean, 0));
  return { kind: 'numeric', edges, counts, nulls: values.length - finite.length, mean, std };
}
