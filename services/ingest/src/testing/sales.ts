import {
  FieldType,
  type RecordBatchSchema,
  type SchemaSchema,
} from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import type { DescMessage, Message, MessageInitShape } from '@bufbuild/protobuf';

/** A message's plain init object (not a message instance), so tests can spread and edit it. */
export type Init<D extends DescMessage> = Exclude<MessageInitShape<D>, Message>;

/**
 * The reference workload (DESIGN.md): units sold per warehouse x SKU, as a dataset schema
 * and columnar batches. Shared by the tests and the benchmark.
 */
export const SALES_FIELDS = ['event_id', 'ts', 'warehouse_id', 'sku', 'units', 'price', 'promo', 'region'];

export function salesSchema(): Init<typeof SchemaSchema> {
  return {
    fields: [
      { name: 'event_id', type: FieldType.STRING, required: true, maxLength: 64 },
      { name: 'ts', type: FieldType.TIMESTAMP, required: true },
      { name: 'warehouse_id', type: FieldType.CATEGORICAL, required: true, vocabulary: ['w1', 'w2', 'w3'] },
      { name: 'sku', type: FieldType.STRING, required: true, minLength: 1, maxLength: 32 },
      { name: 'units', type: FieldType.INT, required: true, min: 0, max: 10_000 },
      { name: 'price', type: FieldType.FLOAT, required: true, nullable: true, min: 0 },
      { name: 'promo', type: FieldType.BOOL },
      { name: 'region', type: FieldType.CATEGORICAL, allowedValues: ['north', 'south', 'east', 'west'] },
    ],
    eventIdField: 'event_id',
    eventTimeField: 'ts',
    entityFields: ['warehouse_id', 'sku'],
    segmentFields: ['warehouse_id'],
  };
}

export interface SalesRow {
  eventId: string;
  /** Unix seconds. */
  ts: number;
  warehouse: string;
  sku: string;
  units: number;
  price: number | null;
  promo: boolean;
  region: string;
}

/** Deterministic rows: the n-th sale of a warehouse, from `first` on. */
export function salesRows(warehouse: string, first: number, count: number): SalesRow[] {
  const rows: SalesRow[] = [];
  for (let n = first; n < first + count; n++) {
    rows.push({
      eventId: `${warehouse}-${String(n).padStart(9, '0')}`,
      ts: 1_700_000_000 + n * 60,
      warehouse,
      sku: `sku-${n % 500}`,
      units: n % 40,
      price: n % 97 === 0 ? null : 5 + (n % 13) * 0.5,
      promo: n % 7 === 0,
      region: ['north', 'south', 'east', 'west'][n % 4] as string,
    });
  }
  return rows;
}

/** Rows as a columnar batch (optionally with the columns in another order). */
export function salesBatch(
  dataset: string,
  source: string,
  rows: SalesRow[],
  columnOrder: string[] = SALES_FIELDS,
): Init<typeof RecordBatchSchema> {
  const nullRows = rows.flatMap((r, i) => (r.price === null ? [i] : []));
  const columns = {
    event_id: {
      name: 'event_id',
      values: { case: 'strings', value: { values: rows.map((r) => r.eventId) } },
    },
    ts: { name: 'ts', values: { case: 'timestamps', value: { seconds: rows.map((r) => BigInt(r.ts)) } } },
    warehouse_id: {
      name: 'warehouse_id',
      values: { case: 'strings', value: { values: rows.map((r) => r.warehouse) } },
    },
    sku: { name: 'sku', values: { case: 'strings', value: { values: rows.map((r) => r.sku) } } },
    units: { name: 'units', values: { case: 'ints', value: { values: rows.map((r) => BigInt(r.units)) } } },
    price: {
      name: 'price',
      values: { case: 'doubles', value: { values: rows.map((r) => r.price ?? 0) } },
      nullRows,
    },
    promo: { name: 'promo', values: { case: 'bools', value: { values: rows.map((r) => r.promo) } } },
    region: { name: 'region', values: { case: 'strings', value: { values: rows.map((r) => r.region) } } },
  } as const;
  return {
    dataset,
    source,
    rowCount: rows.length,
    columns: columnOrder.map((name) => columns[name as keyof typeof columns]),
  };
}
