import {
  Aggregation,
  CalendarPart,
  EncodingKind,
  type FeatureViewDefinition,
  FeatureViewDefinitionSchema,
  SourceFieldType,
} from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { seededRandom } from '@ballast/sampling';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { DAY_MS } from '../definition.js';
import { batchOf, type SourceBatch, type SourceValue } from '../records.js';

/** The reference workload: units sold per warehouse x SKU x day, with prices, promotions and regions. */

export const DAY0 = Date.UTC(2024, 0, 1);

export type DefinitionInit = Exclude<
  MessageInitShape<typeof FeatureViewDefinitionSchema>,
  FeatureViewDefinition
>;

export function retailDefinition(overrides: DefinitionInit = {}): FeatureViewDefinition {
  const base: DefinitionInit = {
    name: 'demand',
    source: {
      dataset: 'sales',
      eventTimeField: 'day',
      fields: [
        { name: 'event_id', type: SourceFieldType.STRING },
        { name: 'day', type: SourceFieldType.TIMESTAMP },
        { name: 'warehouse_id', type: SourceFieldType.STRING },
        { name: 'sku', type: SourceFieldType.STRING },
        { name: 'region', type: SourceFieldType.CATEGORICAL },
        { name: 'units', type: SourceFieldType.FLOAT },
        { name: 'price', type: SourceFieldType.FLOAT },
        { name: 'promo', type: SourceFieldType.BOOL },
      ],
    },
    entityFields: ['warehouse_id', 'sku'],
    segmentFields: ['warehouse_id'],
    label: { name: 'units_next_day', field: 'units', leadDays: 1 },
    features: [
      { name: 'units', transform: { case: 'raw', value: { field: 'units' } } },
      { name: 'units_lag_7', transform: { case: 'lag', value: { field: 'units', days: 7 } } },
      {
        name: 'units_mean_7',
        transform: {
          case: 'rolling',
          value: { field: 'units', aggregation: Aggregation.MEAN, windowDays: 7 },
        },
      },
      {
        name: 'units_max_28',
        transform: {
          case: 'rolling',
          value: { field: 'units', aggregation: Aggregation.MAX, windowDays: 28 },
        },
      },
      { name: 'dow', transform: { case: 'calendar', value: { part: CalendarPart.DAY_OF_WEEK } } },
      {
        name: 'holiday',
        transform: { case: 'calendar', value: { part: CalendarPart.IS_HOLIDAY, holidays: ['2024-01-06'] } },
      },
      { name: 'promo', transform: { case: 'raw', value: { field: 'promo' } } },
      { name: 'price', transform: { case: 'raw', value: { field: 'price' } } },
      {
        name: 'units_vs_mean',
        transform: { case: 'ratio', value: { numerator: 'units', denominator: 'units_mean_7' } },
      },
      {
        name: 'region',
        transform: {
          case: 'encoding',
          value: { field: 'region', kind: EncodingKind.ONE_HOT, maxCategories: 3 },
        },
      },
      { name: 'price_z', transform: { case: 'standardize', value: { input: 'price' } } },
    ],
  };
  return create(FeatureViewDefinitionSchema, { ...base, ...overrides });
}

/** A deterministic generator (mulberry32). */
export const random = seededRandom;

export interface RetailOptions {
  warehouses?: number;
  skus?: number;
  days?: number;
  seed?: number;
  /** Rows per batch. */
  batchRows?: number;
}

/** Daily sales rows for every warehouse x SKU, in warehouse, SKU, day order. */
export function retailRecords(options: RetailOptions = {}): Record<string, SourceValue>[] {
  const { warehouses = 3, skus = 4, days = 60, seed = 7 } = options;
  const next = random(seed);
  const rows: Record<string, SourceValue>[] = [];
  for (let w = 0; w < warehouses; w++) {
    for (let s = 0; s < skus; s++) {
      for (let d = 0; d < days; d++) {
        const promo = next() < 0.15;
        const season = 1 + 0.3 * Math.sin((2 * Math.PI * d) / 7);
        rows.push({
          event_id: `w${w}-s${s}-d${d}`,
          day: DAY0 + d * DAY_MS,
          warehouse_id: `w${w}`,
          sku: `sku-${s}`,
          region: ['north', 'south', 'east', 'west'][(w + s) % 4] ?? 'north',
          units: Math.round((10 + 5 * s) * season * (promo ? 1.5 : 1) + next() * 4),
          price: Math.round((5 + s + (promo ? -1 : 0) + next()) * 100) / 100,
          promo,
        });
      }
    }
  }
  return rows;
}

export function batches(rows: readonly Record<string, SourceValue>[], size = 500): SourceBatch[] {
  const out: SourceBatch[] = [];
  for (let i = 0; i < rows.length; i += size) out.push(batchOf(rows.slice(i, i + size)));
  return out;
}
