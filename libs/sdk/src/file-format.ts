import { FeatureViewDefinitionSchema } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { CreateDatasetRequestSchema } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { CreateModelRequestSchema } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { type DescEnum, type DescField, type DescMessage, ScalarType } from '@bufbuild/protobuf';

/**
 * The shape of a `ballast.yaml`: protobuf JSON of the services' own messages (so a file
 * says exactly what the RPCs accept, and a new proto field is a new file field), except
 * that enums take their short names (`categorical`, not SOURCE_FIELD_TYPE_CATEGORICAL),
 * in any case. The JSON Schema is derived from the same descriptors, so the published
 * schema cannot drift from the contracts (a test compares it with the checked-in file).
 */
export const FILE_MESSAGES = {
  dataset: CreateDatasetRequestSchema,
  featureView: FeatureViewDefinitionSchema,
  model: CreateModelRequestSchema,
} as const;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const prefixOf = (e: DescEnum) => e.sharedPrefix ?? '';

/** The short names of an enum's values, without UNSPECIFIED (a file says nothing instead). */
export function shortNames(e: DescEnum): string[] {
  return e.values
    .map((v) => v.name.slice(prefixOf(e).length).toLowerCase())
    .filter((name) => name !== 'unspecified');
}

function enumValue(e: DescEnum, value: Json, toShort: boolean): Json {
  if (typeof value !== 'string') return value;
  if (toShort) {
    const found = e.values.find((v) => v.name === value);
    return found ? found.name.slice(prefixOf(e).length).toLowerCase() : value;
  }
  const found = e.values.find((v) => v.name.slice(prefixOf(e).length).toLowerCase() === value.toLowerCase());
  return found ? found.name : value;
}

function fieldValue(field: DescField, value: Json, toShort: boolean): Json {
  const one = (kind: 'enum' | 'message' | 'scalar', en?: DescEnum, msg?: DescMessage) => (v: Json) =>
    kind === 'enum' && en
      ? enumValue(en, v, toShort)
      : kind === 'message' && msg
        ? convert(msg, v, toShort)
        : v;
  switch (field.fieldKind) {
    case 'enum':
      return enumValue(field.enum, value, toShort);
    case 'message':
      return convert(field.message, value, toShort);
    case 'list': {
      const map = one(field.listKind, field.enum, field.message);
      return Array.isArray(value) ? value.map(map) : value;
    }
    case 'map': {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
      const map = one(field.mapKind, field.enum, field.message);
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, map(v)]));
    }
    default:
      return value;
  }
}

function convert(desc: DescMessage, value: Json, toShort: boolean): Json {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const byName = new Map(desc.fields.map((f) => [f.jsonName, f]));
  return Object.fromEntries(
    Object.entries(value).map(([key, v]) => {
      const field = byName.get(key);
      return [key, field ? fieldValue(field, v, toShort) : v];
    }),
  );
}

/** A file's object as protobuf JSON: short enum names to the full ones. */
export const toProtoJson = (desc: DescMessage, value: Json): Json => convert(desc, value, false);
/** Protobuf JSON as a file writes it: full enum names to the short ones. */
export const toFileJson = (desc: DescMessage, value: Json): Json => convert(desc, value, true);

/** `categorical` as a pattern that takes it in any case (JSON Schema has no /i flag). */
const anyCase = (word: string) =>
  [...word].map((c) => (/[a-z]/.test(c) ? `[${c}${c.toUpperCase()}]` : c.replace(/[^\w]/g, '\\$&'))).join('');

type Schema = Record<string, unknown>;

function scalarSchema(type: ScalarType): Schema {
  switch (type) {
    case ScalarType.BOOL:
      return { type: 'boolean' };
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return { type: 'string' };
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return { type: 'number' };
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return { type: ['integer', 'string'], pattern: '^-?[0-9]+$' };
    default:
      return { type: 'integer' };
  }
}

const WELL_KNOWN: Record<string, Schema> = {
  'google.protobuf.Duration': {
    type: 'string',
    pattern: '^-?[0-9]+(\\.[0-9]{1,9})?s$',
    description: 'seconds, e.g. "3600s"',
  },
  'google.protobuf.Timestamp': {
    type: 'string',
    pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}T',
    description: 'RFC 3339, e.g. "2024-01-01T00:00:00Z"',
  },
};

/** JSON Schema definitions for a message and every message it reaches, under `$defs`. */
export function messageSchemas(roots: DescMessage[]): Record<string, Schema> {
  const defs: Record<string, Schema> = {};
  const ref = (m: DescMessage): Schema => {
    const known = WELL_KNOWN[m.typeName];
    if (known) return known;
    if (!(m.typeName in defs)) {
      defs[m.typeName] = {};
      defs[m.typeName] = objectSchema(m);
    }
    return { $ref: `#/$defs/${m.typeName}` };
  };
  const enumSchema = (e: DescEnum): Schema => ({
    type: 'string',
    pattern: `^(${shortNames(e).map(anyCase).join('|')})$`,
    description: `one of: ${shortNames(e).join(', ')} (any case)`,
  });
  const item = (kind: 'enum' | 'message' | 'scalar', f: DescField): Schema => {
    if (kind === 'enum' && f.enum) return enumSchema(f.enum);
    if (kind === 'message' && f.message) return ref(f.message);
    return scalarSchema(f.scalar ?? ScalarType.STRING);
  };
  const fieldSchema = (f: DescField): Schema => {
    switch (f.fieldKind) {
      case 'enum':
        return enumSchema(f.enum);
      case 'message':
        return ref(f.message);
      case 'list':
        return { type: 'array', items: item(f.listKind, f) };
      case 'map':
        return { type: 'object', additionalProperties: item(f.mapKind, f) };
      default:
        return scalarSchema(f.scalar);
    }
  };
  const objectSchema = (m: DescMessage): Schema => ({
    type: 'object',
    additionalProperties: false,
    properties: Object.fromEntries(m.fields.map((f) => [f.jsonName, fieldSchema(f)])),
  });
  for (const root of roots) ref(root);
  return defs;
}

/** The published JSON Schema of `ballast.yaml` (libs/sdk/schema/ballast.schema.json). */
export function ballastFileSchema(): Schema {
  const defs = messageSchemas(Object.values(FILE_MESSAGES));
  const refTo = (m: DescMessage) => ({ $ref: `#/$defs/${m.typeName}` });
  const named = (m: DescMessage) => ({ allOf: [refTo(m)], required: ['name'] });
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://ballast.dev/schema/ballast.schema.json',
    title: 'ballast.yaml',
    description:
      'What `ballast apply -f` declares: datasets with their schemas, feature views, models with their promotion policy, and retraining schedules with their training spec. Generated from proto/ by libs/sdk (npm run -w libs/sdk schema).',
    type: 'object',
    additionalProperties: false,
    properties: {
      datasets: { type: 'array', items: named(FILE_MESSAGES.dataset) },
      featureViews: { type: 'array', items: named(FILE_MESSAGES.featureView) },
      models: { type: 'array', items: named(FILE_MESSAGES.model) },
      schedules: { type: 'array', items: { $ref: '#/$defs/Schedule' } },
    },
    $defs: {
      ...defs,
      Schedule: {
        type: 'object',
        additionalProperties: false,
        required: ['model', 'cron'],
        properties: {
          model: { type: 'string', minLength: 1 },
          cron: { type: 'string', minLength: 1, description: 'five cron fields, e.g. "0 3 * * *"' },
          featureView: { type: 'string' },
          promote: { type: 'boolean' },
          spec: { $ref: '#/$defs/TrainingSpec' },
        },
      },
      TrainingSpec: {
        type: 'object',
        additionalProperties: false,
        required: ['hiddenUnits', 'epochs', 'batchSize', 'learningRate', 'seed'],
        properties: {
          hiddenUnits: { type: 'array', items: { type: 'integer', minimum: 1 } },
          activation: { type: 'string' },
          dropout: { type: 'number', minimum: 0, maximum: 1 },
          epochs: { type: 'integer', minimum: 1 },
          batchSize: { type: 'integer', minimum: 1 },
          learningRate: { type: 'number', exclusiveMinimum: 0 },
          seed: { type: 'integer', minimum: 0 },
          earlyStopping: {
            type: 'object',
            additionalProperties: false,
            required: ['patience'],
            properties: {
              patience: { type: 'integer', minimum: 1 },
              minDelta: { type: 'number', minimum: 0 },
            },
          },
        },
      },
    },
  };
}
