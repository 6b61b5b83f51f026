import type {
  FeatureStatistics,
  FeatureStatisticsSchema,
} from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
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

export function featureStatistics(
  featureNames: readonly string[],
  labelName: string,
  segmentFields: readonly string[],
  rows: readonly StoredRow[],
  bins: number,
): Stats[] {
  const segments = new Map<string, number[]>();
  if (segmentFields.length > 0) {
    rows.forEach((row, i) => {
      const list = segments.get(row.segment);
      if (list) list.push(i);
      else segments.set(row.segment, [i]);
    });
  }
  const segmentKeys = [...segments.keys()].sort();
  const out: Stats[] = [];
  const columns: { name: string; isLabel: boolean; value: (row: StoredRow) => number }[] = [
    ...featureNames.map((name, j) => ({
      name,
      isLabel: false,
      value: (row: StoredRow) => row.features[j] as number,
    })),
    { name: labelName, isLabel: true, value: (row: StoredRow) => row.label },
  ];
  for (const column of columns) {
    const all = rows.map(column.value);
    out.push({ feature: column.name, isLabel: column.isLabel, segment: '', ...summarize(all, bins) });
    for (const key of segmentKeys) {
      const values = (segments.get(key) as number[]).map((i) => all[i] as number);
      out.push({
        feature: column.name,
        isLabel: column.isLabel,
        segment: segmentName(segmentFields, key),
        ...summarize(values, bins),
      });
    }
  }
  return out;
}
