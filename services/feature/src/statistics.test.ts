import { describe, expect, it } from 'vitest';
import { QUANTILES, StatisticsBuilder } from './statistics.js';
import type { StoredRow } from './store.js';

/** Rows of two features and a label over three segments, some values missing. */
function rows(count: number): StoredRow[] {
  return Array.from({ length: count }, (_, i) => ({
    eventTime: i,
    entityKey: `e${i % 7}`,
    segment: JSON.stringify([`w${(i % 3) + 1}`]),
    label: i % 11 === 0 ? Number.NaN : (i * 7919) % 1000,
    features: Float64Array.from([(i * 104729) % 5000, i % 13 === 0 ? Number.NaN : Math.sin(i) * 100]),
  }));
}

async function build(input: StoredRow[], sampleRows: number, batch = 1_000) {
  const builder = new StatisticsBuilder(['a', 'b'], 'y', ['warehouse_id'], 10, sampleRows);
  for (let i = 0; i < input.length; i += batch) builder.add(input.slice(i, i + batch));
  if (builder.twoPasses)
    for (let i = 0; i < input.length; i += batch) builder.again(input.slice(i, i + batch));
  return { twoPasses: builder.twoPasses, ...(await builder.finish()) };
}

/** The statistics of one key written out directly, over every value. */
function direct(values: number[], bins: number) {
  const present = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  const n = present.length;
  const mean = present.reduce((s, v) => s + v, 0) / n;
  const min = present[0] as number;
  const max = present[n - 1] as number;
  const counts = new Array<bigint>(bins).fill(0n);
  for (const v of present) {
    const k = Math.min(bins - 1, Math.floor((v - min) / ((max - min) / bins)));
    counts[k] = (counts[k] as bigint) + 1n;
  }
  return {
    count: BigInt(n),
    nullCount: BigInt(values.length - n),
    mean,
    std: Math.sqrt(present.reduce((s, v) => s + (v - mean) ** 2, 0) / n),
    min,
    max,
    counts,
    quantile: (q: number) => present[Math.max(0, Math.ceil(q * n) - 1)] as number,
    rank: (v: number) => present.filter((x) => x <= v).length / n,
  };
}

describe('StatisticsBuilder', () => {
  const input = rows(20_000);
  /** The values a statistic is over, taken from the input directly, and their statistics. */
  const directFor = (s: { feature?: string; isLabel?: boolean; segment?: string }) => {
    const column = s.isLabel ? 2 : s.feature === 'a' ? 0 : 1;
    const segment = s.segment ? JSON.stringify([s.segment.split('=')[1]]) : '';
    const values = input
      .filter((r) => segment === '' || r.segment === segment)
      .map((r) => (column === 2 ? r.label : (r.features[column] as number)));
    return direct(values, 10);
  };

  it('gives every statistic over every value when the rows fit the sample, in one pass', async () => {
    const result = await build(input, 20_000);
    expect(result).toMatchObject({ twoPasses: false, rowCount: 20_000, sampledRows: 0 });
    // Two features and the label, each over all rows and three warehouses.
    expect(result.statistics).toHaveLength(3 * 4);
    for (const s of result.statistics) {
      const d = directFor(s);
      expect(s).toMatchObject({ count: d.count, nullCount: d.nullCount, min: d.min, max: d.max });
      expect(s.mean).toBeCloseTo(d.mean, 9);
      expect(s.std).toBeCloseTo(d.std, 9);
      expect(s.histogram?.counts).toEqual(d.counts);
      expect(s.quantiles?.map((q) => q.value)).toEqual(QUANTILES.map(d.quantile));
    }
  });

  it('keeps a bounded sample past it: exact counts, moments and histograms in two passes, quantiles from the sample', async () => {
    const result = await build(input, 2_000);
    expect(result).toMatchObject({ twoPasses: true, rowCount: 20_000, sampledRows: 2_000 });
    const exact = await build(input, 20_000);
    for (const [i, s] of result.statistics.entries()) {
      const e = exact.statistics[i];
      expect([s.feature, s.segment]).toEqual([e?.feature, e?.segment]);
      expect(s).toMatchObject({ count: e?.count, nullCount: e?.nullCount, min: e?.min, max: e?.max });
      expect(s.mean).toBeCloseTo(e?.mean as number, 9);
      expect(s.std).toBeCloseTo(e?.std as number, 9);
      expect(s.histogram).toEqual(e?.histogram);
      // A sample of 2,000 rows (~670 per warehouse): each sampled quantile lies near its rank
      // among all the values (a rank's standard error is at most 0.02 at 670 values).
      const d = directFor(s);
      for (const q of s.quantiles ?? [])
        expect(Math.abs(d.rank(q.value as number) - (q.q as number))).toBeLessThan(0.08);
    }
    // The same sample on every call.
    expect((await build(input, 2_000, 777)).statistics).toEqual(result.statistics);
  });
});
