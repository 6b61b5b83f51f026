import { Aggregation, type FeatureViewDefinition } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';
import { compileView, DAY_MS } from './definition.js';
import { batchOf, RecordTable, type SourceValue } from './records.js';
import { DAY0, random, retailDefinition, retailRecords } from './testing/retail.js';
import { computeRows, type FeatureRows } from './transforms.js';

function rowsOf(definition: FeatureViewDefinition, records: Record<string, SourceValue>[]): FeatureRows {
  const view = compileView(definition);
  const table = new RecordTable(view.fields);
  table.append(batchOf(records));
  return computeRows(view, table);
}

/** Row (entity key, day) -> { feature: value }, label included. */
function byRow(rows: FeatureRows): Map<string, Record<string, number>> {
  const out = new Map<string, Record<string, number>>();
  for (let i = 0; i < rows.count; i++) {
    const row: Record<string, number> = { label: rows.labels[i] as number };
    rows.featureNames.forEach((name, j) => {
      row[name] = rows.values[i * rows.featureNames.length + j] as number;
    });
    out.set(`${rows.entityKeys[i]}@${((rows.times[i] as number) - DAY0) / DAY_MS}`, row);
  }
  return out;
}

const day = (d: number) => DAY0 + d * DAY_MS;

describe('transform engine', () => {
  it('computes each row from its past only: a spike after the row changes nothing before it', () => {
    const records = Array.from({ length: 14 }, (_, d) => ({
      day: day(d),
      warehouse_id: 'w1',
      sku: 'a',
      region: 'north',
      units: d === 5 ? 1000 : 1,
      price: 2,
      promo: false,
    }));
    // Read out of order: the engine orders by event time itself.
    const rows = byRow(rowsOf(retailDefinition(), records.reverse()));
    const key = JSON.stringify(['w1', 'a']);
    const at = (d: number) => rows.get(`${key}@${d}`) as Record<string, number>;
    expect(at(4)).toMatchObject({ units: 1, units_mean_7: 1, units_max_28: 1, label: 1000 });
    expect(at(5)).toMatchObject({ units: 1000, units_max_28: 1000, label: 1 });
    expect(at(5).units_mean_7).toBeCloseTo((5 + 1000) / 6);
    // The 7-day window (t - 7d, t] drops day 5 on day 12.
    expect(at(11).units_mean_7).toBeCloseTo((1000 + 6) / 7);
    expect(at(12).units_mean_7).toBe(1);
    expect(at(3).units_lag_7).toBeNaN();
    expect(at(7).units_lag_7).toBe(1);
    expect(at(12).units_lag_7).toBe(1000);
    expect(at(13).label).toBeNaN();
    expect(at(5).dow).toBe(new Date(day(5)).getUTCDay());
    expect(at(5).holiday).toBe(1);
    expect(at(4).holiday).toBe(0);
    expect(at(5).units_vs_mean).toBeCloseTo(1000 / ((5 + 1000) / 6));
  });

  it('gives every row the same features whether or not later records exist (no leakage)', () => {
    // Fit window before every cut, so learned encodings and statistics are the same too.
    const definition = retailDefinition({
      fitWindow: { startTime: timestampFromMs(day(0)), endTime: timestampFromMs(day(20)) },
    });
    const records = retailRecords({ warehouses: 2, skus: 3, days: 60 });
    // Gaps: drop a tenth of the records at random so lags and windows meet missing days.
    const next = random(3);
    const sparse = records.filter(() => next() > 0.1);
    const full = byRow(rowsOf(definition, sparse));
    for (const cut of [25, 40, 59]) {
      const truncated = byRow(
        rowsOf(
          definition,
          sparse.filter((r) => (r.day as number) <= day(cut)),
        ),
      );
      let compared = 0;
      for (const [key, row] of truncated) {
        const { label: _l, ...features } = row;
        const { label: _f, ...fullFeatures } = full.get(key) as Record<string, number>;
        expect(features, key).toEqual(fullFeatures);
        compared++;
      }
      expect(compared).toBeGreaterThan(cut * 4);
    }
  });

  it('keeps both records of an entity at one time (in ingest order), skips records without keys, and learns the fit', () => {
    const rows = rowsOf(retailDefinition(), [
      { day: day(0), warehouse_id: 'w1', sku: 'a', region: 'north', units: 1, price: 1, promo: true },
      { day: day(0), warehouse_id: 'w1', sku: 'a', region: 'south', units: 2, price: 3, promo: false },
      { day: day(1), warehouse_id: 'w1', sku: 'b', region: 'south', units: 5, price: 3, promo: false },
      { day: day(1), warehouse_id: null, sku: 'b', region: 'south', units: 5, price: 3, promo: false },
      { day: null, warehouse_id: 'w2', sku: 'b', region: 'east', units: 5, price: 3, promo: false },
    ]);
    expect(rows.count).toBe(3);
    expect(rows.skipped).toBe(2);
    expect(rows.count + rows.skipped).toBe(5);
    expect(rows.entityKeys).toEqual(['["w1","a"]', '["w1","a"]', '["w1","b"]']);
    expect([...rows.records]).toEqual([0, 1, 2]);
    const units = rows.featureNames.indexOf('units');
    const width = rows.featureNames.length;
    expect([rows.values[units], rows.values[width + units]]).toEqual([1, 2]);
    expect(rows.fit.vocabularies.region).toEqual(['north', 'south']);
    const fit = rows.fit.standardization.price_z;
    expect(fit?.mean).toBeCloseTo(7 / 3, 12);
    expect(fit?.std).toBeCloseTo(Math.sqrt(8) / 3, 12);
    expect(fit?.count).toBe(3);
    expect(rows.featureNames.slice(-4)).toEqual(['region_0', 'region_1', 'region_2', 'price_z']);
    expect(rows.segments).toEqual(['["w1"]', '["w1"]', '["w1"]']);
  });

  it('aggregates windows as a brute-force scan over the past would', () => {
    const definition = retailDefinition({
      features: [
        Aggregation.MEAN,
        Aggregation.SUM,
        Aggregation.MIN,
        Aggregation.MAX,
        Aggregation.STD,
        Aggregation.COUNT,
      ].map((aggregation) => ({
        name: `agg_${aggregation}`,
        transform: { case: 'rolling' as const, value: { field: 'units', aggregation, windowDays: 5 } },
      })),
    });
    const next = random(11);
    const records = Array.from({ length: 40 }, (_, d) => ({
      day: day(d),
      warehouse_id: 'w',
      sku: 's',
      units: next() < 0.2 ? null : Math.round(next() * 100),
    })).filter(() => next() > 0.2);
    const rows = rowsOf(definition, records);
    for (let i = 0; i < rows.count; i++) {
      const t = rows.times[i] as number;
      const window = records
        .filter((r) => (r.day as number) <= t && (r.day as number) > t - 5 * DAY_MS && r.units !== null)
        .map((r) => r.units as number);
      const n = window.length;
      const mean = window.reduce((a, b) => a + b, 0) / n;
      const std = Math.sqrt(window.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
      const expected = [mean, n ? mean * n : Number.NaN, Math.min(...window), Math.max(...window), std, n];
      const got = Array.from(rows.values.subarray(i * 6, i * 6 + 6));
      expected.forEach((e, k) => {
        if (n === 0 || (k === 4 && n < 2))
          expect(got[k]).toSatisfy((v: number) => (k === 5 ? v === 0 : Number.isNaN(v)));
        else expect(got[k]).toBeCloseTo(e, 6);
      });
    }
  });
});
