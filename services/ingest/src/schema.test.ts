import { FieldType, SchemaSchema } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { BallastError } from '@ballast/grpc-kit';
import { create } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { compareSchemas, parseSchema } from './schema.js';
import { type Init, salesSchema } from './testing/sales.js';

const parse = (schema: Init<typeof SchemaSchema>) => parseSchema(create(SchemaSchema, schema));

function edit(change: (schema: Init<typeof SchemaSchema>) => void) {
  const schema = salesSchema();
  change(schema);
  return parse(schema);
}

const field = (schema: Init<typeof SchemaSchema>, name: string) => {
  const found = schema.fields?.find((f) => f.name === name);
  if (!found) throw new Error(name);
  return found;
};

function invalid(schema: Init<typeof SchemaSchema>) {
  try {
    parse(schema);
  } catch (err) {
    if (err instanceof BallastError) return [err.field, err.rule];
    throw err;
  }
  return 'valid';
}

describe('schema rules', () => {
  it('checks a schema once, naming the field and the rule', () => {
    expect(invalid({ ...salesSchema(), fields: [] })).toEqual(['schema.fields', 'must not be empty']);
    const dup = salesSchema();
    dup.fields = [...(dup.fields ?? []), { name: 'sku', type: FieldType.STRING }];
    expect(invalid(dup)).toEqual(['schema.fields[8].name', 'duplicate field sku']);
    const nullableId = salesSchema();
    field(nullableId, 'event_id').nullable = true;
    expect(invalid(nullableId)?.[0]).toBe('schema.event_id_field');
    const range = salesSchema();
    Object.assign(field(range, 'units'), { min: 5, max: 1 });
    expect(invalid(range)).toEqual(['schema.fields[4].max', 'must be >= min']);
    const nonFinite = salesSchema();
    field(nonFinite, 'price').max = Number.POSITIVE_INFINITY;
    expect(invalid(nonFinite)).toEqual(['schema.fields[5].max', 'must be a finite number']);
    const vocab = salesSchema();
    field(vocab, 'sku').vocabulary = ['a'];
    expect(invalid(vocab)?.[0]).toBe('schema.fields[3].vocabulary');
    expect(invalid({ ...salesSchema(), segmentFields: ['price'] })?.[0]).toBe('schema.segment_fields[0]');
    expect(invalid({ ...salesSchema(), entityFields: ['nope'] })?.[0]).toBe('schema.entity_fields[0]');
    const badName = salesSchema();
    field(badName, 'sku').name = 'sku-code';
    expect(invalid(badName)?.[0]).toBe('schema.fields[3].name');
  });

  it('calls dropping, retyping and loosening nullability breaking', () => {
    const base = parse(salesSchema());
    const dropped = edit((s) => {
      s.fields = (s.fields ?? []).filter((f) => f.name !== 'promo');
    });
    expect(compareSchemas(base, dropped).breaking).toEqual(['dropped field promo']);
    const retyped = edit((s) => {
      field(s, 'units').type = FieldType.FLOAT;
    });
    expect(compareSchemas(base, retyped).breaking).toEqual(['retyped field units from int to float']);
    const nullable = edit((s) => {
      field(s, 'sku').nullable = true;
    });
    expect(compareSchemas(base, nullable).breaking).toEqual(['made field sku nullable']);
    const required = edit((s) => {
      s.fields = [...(s.fields ?? []), { name: 'channel', type: FieldType.STRING, required: true }];
    });
    expect(compareSchemas(base, required).breaking).toEqual(['added required field channel']);
    const entities = edit((s) => {
      s.entityFields = ['sku'];
    });
    expect(compareSchemas(base, entities).breaking).toEqual(['changed the entity fields to [sku]']);
  });

  it('calls new optional fields, limits and tighter nullability compatible', () => {
    const base = parse(salesSchema());
    const next = edit((s) => {
      s.fields = [...(s.fields ?? []), { name: 'channel', type: FieldType.STRING }];
      field(s, 'units').max = 50_000;
      field(s, 'price').nullable = false;
      s.segmentFields = ['warehouse_id', 'region'];
    });
    const diff = compareSchemas(base, next);
    expect(diff.breaking).toEqual([]);
    expect(diff.changes).toEqual([
      'changed the limits or description of field units',
      'made field price non-nullable',
      'added field channel (optional)',
      'changed the segment fields to [warehouse_id, region]',
    ]);
    expect(compareSchemas(base, parse(salesSchema())).changes).toEqual([]);
  });
});
