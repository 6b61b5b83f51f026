import {
  Aggregation,
  CalendarPart,
  EncodingKind,
  FeatureSchema,
  FeatureStatisticsSchema,
} from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { create } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { statisticsRows, transformText } from './commands-features.js';

describe('features show and stats', () => {
  it('writes each transform as a short expression', () => {
    const f = (transform: Parameters<typeof create<typeof FeatureSchema>>[1]) =>
      transformText(create(FeatureSchema, { name: 'x', ...transform }));
    expect(f({ transform: { case: 'raw', value: { field: 'price' } } })).toBe('price');
    expect(f({ transform: { case: 'lag', value: { field: 'units', days: 7 } } })).toBe('lag(units, 7d)');
    expect(
      f({
        transform: {
          case: 'rolling',
          value: { field: 'units', aggregation: Aggregation.MEAN, windowDays: 28 },
        },
      }),
    ).toBe('mean(units, 28d)');
    expect(f({ transform: { case: 'calendar', value: { part: CalendarPart.DAY_OF_WEEK } } })).toBe(
      'day_of_week(event time)',
    );
    expect(f({ transform: { case: 'ratio', value: { numerator: 'a', denominator: 'b' } } })).toBe('a / b');
    expect(
      f({
        transform: {
          case: 'encoding',
          value: { field: 'sku', kind: EncodingKind.ONE_HOT, maxCategories: 8 },
        },
      }),
    ).toBe('one_hot(sku, 8)');
    expect(f({ transform: { case: 'standardize', value: { input: 'price' } } })).toBe('standardize(price)');
  });

  it('shows statistics per feature, the label marked, the segment column only when asked', () => {
    const stats = [
      create(FeatureStatisticsSchema, {
        feature: 'price',
        count: 10n,
        nullCount: 1n,
        mean: 4.25,
        std: 1.5,
        min: 1,
        max: 9.123456,
        quantiles: [
          { q: 0.25, value: 3 },
          { q: 0.5, value: 4 },
        ],
      }),
      create(FeatureStatisticsSchema, {
        feature: 'units',
        isLabel: true,
        segment: 'warehouse_id=W1',
        count: 0n,
        mean: Number.NaN,
      }),
    ];
    expect(statisticsRows(stats, false)[0]).toEqual(['price', '10', '1', '4.25', '1.5', '1', '4', '9.123']);
    expect(statisticsRows(stats, true)[1]?.slice(0, 3)).toEqual(['warehouse_id=W1', 'units (label)', '0']);
    expect(statisticsRows(stats, true)[1]?.[4]).toBe('-');
  });
});
