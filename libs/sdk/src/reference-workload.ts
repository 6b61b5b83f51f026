import {
  CalendarPart,
  EncodingKind,
  type FeatureViewDefinitionSchema,
  SourceFieldType,
} from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import {
  FieldType,
  type RecordBatchSchema,
  type SchemaSchema,
} from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { type SaleRecord, warehouseName } from './reference-data.js';

/**
 * The reference workload as Ballast takes it in: the sales dataset's schema, the demand
 * feature view over it (daily units from planned price and promotion, day of week, warehouse
 * and SKU), and sales rows as one columnar ingest batch. The demo and the benchmarks use them.
 */

export function referenceSalesSchema(warehouses: number): MessageInitShape<typeof SchemaSchema> {
  return {
    fields: [
      { name: 'event_id', type: FieldType.STRING, required: true },
      { name: 'day', type: FieldType.TIMESTAMP, required: true },
      {
        name: 'warehouse_id',
        type: FieldType.STRING,
        required: true,
        allowedValues: Array.from({ length: warehouses }, (_, w) => warehouseName(w)),
      },
      { name: 'sku', type: FieldType.STRING, required: true },
      { name: 'units', type: FieldType.FLOAT, required: true, min: 0 },
      { name: 'price', type: FieldType.FLOAT, required: true, min: 0.01 },
      { name: 'promo', type: FieldType.BOOL, required: true },
    ],
    eventIdField: 'event_id',
    eventTimeField: 'day',
    entityFields: ['warehouse_id', 'sku'],
    segmentFields: ['warehouse_id'],
  };
}

export function referenceDemandView(o: {
  name: string;
  dataset: string;
  warehouses: number;
  skus: number;
  description?: string;
}): MessageInitShape<typeof FeatureViewDefinitionSchema> {
  return {
    name: o.name,
    description:
      o.description ?? 'daily demand from planned price and promotion, calendar, warehouse and SKU',
    source: {
      dataset: o.dataset,
      eventTimeField: 'day',
      fields: [
        { name: 'event_id', type: SourceFieldType.STRING },
        { name: 'day', type: SourceFieldType.TIMESTAMP },
        { name: 'warehouse_id', type: SourceFieldType.STRING },
        { name: 'sku', type: SourceFieldType.STRING },
        { name: 'units', type: SourceFieldType.FLOAT },
        { name: 'price', type: SourceFieldType.FLOAT },
        { name: 'promo', type: SourceFieldType.BOOL },
      ],
    },
    entityFields: ['warehouse_id', 'sku'],
    segmentFields: ['warehouse_id'],
    // Units sold on the day, from that day's planned price and promotion.
    label: { name: 'units_sold', field: 'units', leadDays: 0 },
    features: [
      { name: 'price', transform: { case: 'raw', value: { field: 'price' } } },
      { name: 'promo', transform: { case: 'raw', value: { field: 'promo' } } },
      { name: 'dow', transform: { case: 'calendar', value: { part: CalendarPart.DAY_OF_WEEK } } },
      {
        name: 'warehouse',
        transform: {
          case: 'encoding',
          value: { field: 'warehouse_id', kind: EncodingKind.ONE_HOT, maxCategories: o.warehouses },
        },
      },
      {
        name: 'sku',
        transform: {
          case: 'encoding',
          value: { field: 'sku', kind: EncodingKind.ONE_HOT, maxCategories: o.skus },
        },
      },
    ],
  };
}

/** Sales as one columnar batch. */
export function salesBatch(
  dataset: string,
  source: string,
  rows: readonly SaleRecord[],
): MessageInitShape<typeof RecordBatchSchema> {
  const pick = <T>(f: (r: SaleRecord) => T) => rows.map(f);
  return {
    dataset,
    source,
    rowCount: rows.length,
    columns: [
      { name: 'event_id', values: { case: 'strings' as const, value: { values: pick((r) => r.event_id) } } },
      {
        name: 'day',
        values: { case: 'timestamps' as const, value: { seconds: pick((r) => BigInt(r.day / 1000)) } },
      },
      {
        name: 'warehouse_id',
        values: { case: 'strings' as const, value: { values: pick((r) => r.warehouse_id) } },
      },
      { name: 'sku', values: { case: 'strings' as const, value: { values: pick((r) => r.sku) } } },
      { name: 'units', values: { case: 'doubles' as const, value: { values: pick((r) => r.units) } } },
      { name: 'price', values: { case: 'doubles' as const, value: { values: pick((r) => r.price) } } },
      { name: 'promo', values: { case: 'bools' as const, value: { values: pick((r) => r.promo) } } },
    ],
  };
}
