import type {
  FeatureStatistics,
  FeatureStatisticsSchema,
} from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { reservoirSlot, seededRandom } from '@ballast/sampling';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { yieldToLoop } from './event-loop.js';
import type { StoredRow } from './store.js';

/**
 * Feature statistics, the drift baseline: per feature (and the label), over all rows and
 * per segment — count, nulls, mean, std (population), min/max, nearest-rank quantiles and
 * an equal-width histogram over [min, max].
 */
export const QUANTILES = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99];

type Stats = Exclude<MessageInitShape<typeof FeatureStatisticsSchema>, FeatureStatistics>;

export function summarize(values: readonly number[], bins: number): Omit<Stats, 'feature' | 'segment'> {
  const present = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  const n = present.length;
  const nulls = values.length - n;
  if (n === 0)
    return {
      count: 0n,
      nullCount: BigInt(nulls),
      mean: Number.NaN,
      std: Number.NaN,
      min: Number.NaN,
      max: Number.NaN,
    };
  let sum = 0;
  for (const v of present) sum += v;
  const mean = sum / n;
  let squares = 0;
  for (const v of present) squares += (v - mean) ** 2;
  const min = present[0] as number;
  const max = present[n - 1] as number;
  const width = (max - min) / bins;
  const edges = Array.from({ length: bins + 1 }, (_, k) => (k === bins ? max : min + k * width));
  const counts = new Array<bigint>(bins).fill(0n);
  for (const v of present) {
    const k = width > 0 ? Math.min(bins - 1, Math.floor((v - min) / width)) : 0;
    counts[k] = (counts[k] as bigint) + 1n;
  }
  return {
    count: BigInt(n),
    nullCount: BigInt(nulls),
    mean,
    std: Math.sqrt(squares / n),
    min,
    max,
    quantiles: QUANTILES.map((q) => ({ q, value: present[Math.max(0, Math.ceil(q * n) - 1)] as number })),
    histogram: { edges, counts },
  };
}

/** `["w1"]` with segment fields [warehouse_id] -> `warehouse_id=w1`. */
export function segmentName(fields: readonly string[], segment: string): string {
  const values = JSON.parse(segment) as (string | null)[];
  return fields.map((f, i) => `${f}=${values[i] ?? 'null'}`).join(',');
}

/**
 * Rows whose values the statistics keep in memory: versions up to this many rows get every
 * statistic over every value, as summarize computes them; larger ones get exact
 * counts, moments, extremes and histograms in two streamed passes, and quantiles from a
 * uniform sample of this many rows. Sorting a key's 250k values holds the loop ~40 ms.
 */
export const SAMPLE_ROWS = 250_000;

/** One feature (or the label) over all rows or one segment, in streamed passes. */
class KeyAccumulator {
  count = 0;
  nulls = 0;
  sum = 0;
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;
  squares = 0;
  /** Histogram counts, made as the second pass starts (with the mean and bin width it uses). */
  private counts: Float64Array | undefined;
  private mean = 0;
  private width = 0;

  first(v: number) {
    if (Number.isNaN(v)) {
      this.nulls++;
      return;
    }
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  second(v: number, bins: number) {
    if (Number.isNaN(v)) return;
    if (!this.counts) {
      this.counts = new Float64Array(bins);
      this.mean = this.sum / this.count;
      this.width = (this.max - this.min) / bins;
    }
    this.squares += (v - this.mean) ** 2;
    const k = this.width > 0 ? Math.min(bins - 1, Math.floor((v - this.min) / this.width)) : 0;
    this.counts[k] = (this.counts[k] as number) + 1;
  }

  /** The summary, with quantiles from `sampled` (this key's values among the sampled rows). */
  summary(sampled: readonly number[], bins: number): Omit<Stats, 'feature' | 'segment'> {
    const n = this.count;
    if (n === 0) return { ...summarize([], bins), nullCount: BigInt(this.nulls) };
    const width = (this.max - this.min) / bins;
    const present = sampled.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
    return {
      count: BigInt(n),
      nullCount: BigInt(this.nulls),
      mean: this.sum / n,
      std: Math.sqrt(this.squares / n),
      min: this.min,
      max: this.max,
      quantiles:
        present.length === 0
          ? []
          : QUANTILES.map((q) => ({
              q,
              value: present[Math.max(0, Math.ceil(q * present.length) - 1)] as number,
            })),
      histogram: {
        edges: Array.from({ length: bins + 1 }, (_, k) => (k === bins ? this.max : this.min + k * width)),
        counts: Array.from(this.counts ?? new Float64Array(bins), (c) => BigInt(c)),
      },
    };
  }
}

/**
 * Feature statistics over rows read in batches, in memory bounded whatever the version's
 * size: up to `sampleRows` rows are kept (a uniform reservoir sample once there are more),
 * and per feature and segment only running sums. A version of at most `sampleRows` rows
 * gets exactly what summarize gives over all of them; a larger one needs a second
 * pass over the same rows (`again`) for the spread and the histograms, whose range the
 * first pass finds, and takes its quantiles from the sample.
 */
export class StatisticsBuilder {
  private readonly columns: number;
  private readonly keys = new Map<string, KeyAccumulator[]>();
  /** Seeded: the same sample on every call. */
  private readonly random = seededRandom(0x5eed);
  private rows = 0;
  /** How many rows are kept: every one read, up to sampleRows (Algorithm R then replaces them). */
  private get kept(): number {
    return Math.min(this.rows, this.sampleRows);
  }
  /**
   * The kept rows, compactly: their values (features then label) `columns` to a row, and
   * their segments as indexes into `segments`; grown by doubling up to sampleRows rows.
   */
  private values = new Float64Array(0);
  private segmentOf = new Uint32Array(0);
  private readonly segments: string[] = [];
  private readonly segmentIds = new Map<string, number>();

  constructor(
    private readonly featureNames: readonly string[],
    private readonly labelName: string,
    private readonly segmentFields: readonly string[],
    private readonly bins: number,
    private readonly sampleRows = SAMPLE_ROWS,
  ) {
    this.columns = featureNames.length + 1;
  }

  /** Whether the rows must be read again (into `again`) before `finish`. */
  get twoPasses(): boolean {
    return this.rows > this.sampleRows;
  }

  /** The first pass. */
  add(batch: readonly StoredRow[]) {
    for (const row of batch) {
      const slot = reservoirSlot(this.rows, this.sampleRows, this.random);
      if (slot !== undefined) this.keep(slot, row);
      this.rows++;
      for (const accs of this.accumulators(row)) {
        for (let c = 0; c < this.columns; c++) (accs[c] as KeyAccumulator).first(this.value(row, c));
      }
    }
  }

  /** The second pass, over the same rows (any order). */
  again(batch: readonly StoredRow[]) {
    for (const row of batch) {
      for (const accs of this.accumulators(row)) {
        for (let c = 0; c < this.columns; c++)
          (accs[c] as KeyAccumulator).second(this.value(row, c), this.bins);
      }
    }
  }

  /**
   * The statistics per feature (and the label), over all rows and then per segment in name
   * order, the event loop let run between them (a sort of a key's values can take ~40 ms).
   */
  async finish(): Promise<{ rowCount: number; sampledRows: number; statistics: Stats[] }> {
    const exact = !this.twoPasses;
    // The kept rows of each segment, in the order they were kept.
    const bySegment = new Map<string, number[]>();
    for (let i = 0; i < this.kept; i++) {
      const segment = this.segments[this.segmentOf[i] as number] as string;
      const list = bySegment.get(segment);
      if (list) list.push(i);
      else bySegment.set(segment, [i]);
    }
    const all = Array.from({ length: this.kept }, (_, i) => i);
    const segmentKeys = [...this.keys.keys()].filter((k) => k !== '').sort();
    const statistics: Stats[] = [];
    for (let c = 0; c < this.columns; c++) {
      const isLabel = c === this.columns - 1;
      const feature = isLabel ? this.labelName : (this.featureNames[c] as string);
      for (const key of ['', ...segmentKeys]) {
        const values = (key === '' ? all : (bySegment.get(key) ?? [])).map(
          (i) => this.values[i * this.columns + c] as number,
        );
        const acc = (this.keys.get(key) as KeyAccumulator[])[c] as KeyAccumulator;
        statistics.push({
          feature,
          isLabel,
          segment: key === '' ? '' : segmentName(this.segmentFields, key),
          ...(exact ? summarize(values, this.bins) : acc.summary(values, this.bins)),
        });
        await yieldToLoop();
      }
    }
    return { rowCount: this.rows, sampledRows: exact ? 0 : this.kept, statistics };
  }

  /** Keeps a row's values in sample slot `slot`. */
  private keep(slot: number, row: StoredRow) {
    if (slot * this.columns >= this.values.length) {
      const rows = Math.min(this.sampleRows, Math.max(1_024, 2 * (this.values.length / this.columns)));
      const values = new Float64Array(rows * this.columns);
      values.set(this.values);
      this.values = values;
      const segmentOf = new Uint32Array(rows);
      segmentOf.set(this.segmentOf);
      this.segmentOf = segmentOf;
    }
    for (let c = 0; c < this.columns; c++) this.values[slot * this.columns + c] = this.value(row, c);
    let id = this.segmentIds.get(row.segment);
    if (id === undefined) {
      id = this.segments.push(row.segment) - 1;
      this.segmentIds.set(row.segment, id);
    }
    this.segmentOf[slot] = id;
  }

  private value(row: StoredRow, column: number): number {
    return column === this.columns - 1 ? row.label : (row.features[column] as number);
  }

  /** The accumulators a row adds to: all rows', and its segment's when the view has segments. */
  private accumulators(row: StoredRow): KeyAccumulator[][] {
    const all = this.keyed('');
    return this.segmentFields.length > 0 ? [all, this.keyed(row.segment)] : [all];
  }

  private keyed(key: string): KeyAccumulator[] {
    let accs = this.keys.get(key);
    if (!accs) {
      accs = Array.from({ length: this.columns }, () => new KeyAccumulator());
      this.keys.set(key, accs);
    }
    return accs;
  }
}
