import {
  FieldType,
  RecordBatchSchema,
  SchemaSchema,
} from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { BallastError } from '@ballast/grpc-kit';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { parseSchema } from './schema.js';
import { type Init, SALES_FIELDS, salesBatch, salesRows, salesSchema } from './testing/sales.js';
import { checkBatchLimits, compileSchema, formatTimestamp, parseTimestamp } from './validation.js';

const compiled = (schema: MessageInitShape<typeof SchemaSchema> = salesSchema()) =>
  compileSchema({ ...parseSchema(create(SchemaSchema, schema)), major: 1, minor: 0, createdAt: new Date(0) });

type BatchInit = Init<typeof RecordBatchSchema>;

function withColumn(
  batch: BatchInit,
  name: string,
  column: NonNullable<BatchInit['columns']>[number] | undefined,
) {
  const columns = (batch.columns ?? []).filter((c) => c.name !== name);
  return { ...batch, columns: column ? [...columns, column] : columns };
}

/** A column's typed list, to edit in place. */
function list(batch: BatchInit, name: string): unknown[] {
  const values = batch.columns?.find((c) => c.name === name)?.values;
  if (!values || values.case === undefined) throw new Error(`no column ${name}`);
  return (values.case === 'timestamps' ? values.value.seconds : values.value.values) as unknown[];
}

function rules(batch: BatchInit, schema = compiled()) {
  const result = schema.validate(create(RecordBatchSchema, batch));
  return result.quarantined.map((q) => [q.row, ...q.violations.map((v) => `${v.field}:${v.rule}`)]);
}

describe('compiled validation', () => {
  it('writes each valid record as canonical JSON, fields sorted by name', () => {
    const result = compiled().validate(
      create(RecordBatchSchema, salesBatch('d', 's', salesRows('w1', 0, 2))),
    );
    expect(result.validCount).toBe(2);
    expect(JSON.parse(result.rowsJson)[1]).toEqual({
      i: 'w1-000000001',
      t: '2023-11-14T22:14:20Z',
      d: {
        event_id: 'w1-000000001',
        price: 5.5,
        promo: false,
        region: 'south',
        sku: 'sku-1',
        ts: '2023-11-14T22:14:20Z',
        units: 1,
        warehouse_id: 'w1',
      },
    });
    expect(result.rowsJson).toContain('"d":{"event_id":"w1-000000000","price":null,"promo":true,');
  });

  it('gives the same JSON whatever the column order', () => {
    const rows = salesRows('w1', 0, 50);
    const a = compiled().validate(create(RecordBatchSchema, salesBatch('d', 's', rows)));
    const b = compiled().validate(
      create(RecordBatchSchema, salesBatch('d', 's', rows, [...SALES_FIELDS].reverse())),
    );
    expect(b.rowsJson).toBe(a.rowsJson);
  });

  it('names the rule each field broke', () => {
    const batch = salesBatch('d', 's', salesRows('w1', 0, 6));
    list(batch, 'ts')[0] = 300_000_000_000n;
    list(batch, 'price')[1] = Number.NaN;
    list(batch, 'units')[2] = 10_001n;
    list(batch, 'sku')[3] = 'x'.repeat(33);
    list(batch, 'event_id')[4] = '';
    list(batch, 'region')[5] = 'a\u0000b';
    expect(rules(batch)).toEqual([
      [0, 'ts:range'],
      [1, 'price:finite'],
      [2, 'units:max'],
      [3, 'sku:max_length'],
      [4, 'event_id:min_length'],
      [5, 'region:nul'],
    ]);
  });

  it('counts length in code points, not UTF-16 units', () => {
    const batch = salesBatch('d', 's', salesRows('w1', 0, 2));
    list(batch, 'sku')[0] = '😀'.repeat(32); // 64 UTF-16 units, 32 characters
    list(batch, 'sku')[1] = '😀'.repeat(33);
    expect(rules(batch)).toEqual([[1, 'sku:max_length']]);
  });

  it('refuses null where a field is not nullable, and a missing required field', () => {
    const batch = salesBatch('d', 's', salesRows('w1', 0, 2));
    const units = batch.columns?.find((c) => c.name === 'units');
    if (units) units.nullRows = [1];
    expect(rules(withColumn(batch, 'sku', undefined))).toEqual([
      [0, 'sku:required'],
      [1, 'sku:required', 'units:nullable'],
    ]);
  });

  it('checks types per column: floats take ints, ints do not take floats', () => {
    const batch = salesBatch('d', 's', salesRows('w1', 0, 2));
    const asInts = withColumn(batch, 'price', {
      name: 'price',
      values: { case: 'ints', value: { values: [3n, 4n] } },
    });
    expect(rules(asInts)).toEqual([]);
    const asDoubles = withColumn(batch, 'units', {
      name: 'units',
      values: { case: 'doubles', value: { values: [1, 2] } },
    });
    expect(rules(asDoubles)).toEqual([
      [0, 'units:type'],
      [1, 'units:type'],
    ]);
  });

  it('refuses a structurally broken batch whole', () => {
    const schema = compiled();
    const batch = salesBatch('d', 's', salesRows('w1', 0, 3));
    const fail = (b: BatchInit) => {
      try {
        schema.validate(create(RecordBatchSchema, b));
      } catch (err) {
        return err instanceof BallastError ? [err.code, err.field] : err;
      }
      return 'passed';
    };
    expect(fail({ ...batch, columns: [...(batch.columns ?? []), { name: 'colour' }] })).toEqual([
      'invalid_argument',
      'batch.columns[8].name',
    ]);
    expect(
      fail({ ...batch, columns: [...(batch.columns ?? []), (batch.columns ?? [])[0] as never] }),
    ).toEqual(['invalid_argument', 'batch.columns[8].name']);
    expect(fail({ ...batch, rowCount: 2 })).toEqual(['invalid_argument', 'batch.columns[0].values']);
    const price = (batch.columns ?? []).find((c) => c.name === 'price');
    expect(fail(withColumn(batch, 'price', { ...price, nullRows: [2, 1] }))).toEqual([
      'invalid_argument',
      'batch.columns[7].null_rows',
    ]);
  });

  it('limits the batch size with RESOURCE_EXHAUSTED naming the limit', () => {
    const batch = create(RecordBatchSchema, { dataset: 'd', rowCount: 11 });
    expect(() => checkBatchLimits(batch, { maxBatchRecords: 10 })).toThrow(/limit is 10 per batch/);
    expect(() => checkBatchLimits(undefined, { maxBatchRecords: 10 })).toThrow(/batch: is required/);
  });

  it('reports categorical values outside the vocabulary as new, without refusing them', () => {
    const batch = salesBatch('d', 's', [...salesRows('w1', 0, 2), ...salesRows('w9', 0, 1)]);
    const result = compiled().validate(create(RecordBatchSchema, batch));
    expect(result.validCount).toBe(3);
    expect(result.quality.find((q) => q.field === 'warehouse_id')).toMatchObject({
      newValues: ['w9'],
      newValueCount: 1,
    });
  });

  it('takes int event ids', () => {
    const schema = compiled({
      fields: [
        { name: 'id', type: FieldType.INT, required: true },
        { name: 't', type: FieldType.TIMESTAMP, required: true },
      ],
      eventIdField: 'id',
      eventTimeField: 't',
    });
    const result = schema.validate(
      create(RecordBatchSchema, {
        rowCount: 1,
        columns: [
          { name: 'id', values: { case: 'ints', value: { values: [42n] } } },
          { name: 't', values: { case: 'timestamps', value: { seconds: [0n], nanos: [5000] } } },
        ],
      }),
    );
    expect(JSON.parse(result.rowsJson)).toEqual([
      { i: '42', t: '1970-01-01T00:00:00.000005Z', d: { id: 42, t: '1970-01-01T00:00:00.000005Z' } },
    ]);
  });
});

describe('timestamps', () => {
  it('format as RFC 3339 with 0, 3, 6 or 9 fraction digits and parse back', () => {
    for (const [seconds, nanos, text] of [
      [0n, 0, '1970-01-01T00:00:00Z'],
      [1n, 500_000_000, '1970-01-01T00:00:01.500Z'],
      [-62135596800n, 1_000, '0001-01-01T00:00:00.000001Z'],
      [253402300799n, 999_999_999, '9999-12-31T23:59:59.999999999Z'],
    ] as const) {
      expect(formatTimestamp(seconds, nanos)).toBe(text);
      expect(parseTimestamp(text)).toEqual({ seconds, nanos });
    }
  });
});
