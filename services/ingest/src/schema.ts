import { type Field, FieldType, type Schema } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { invalidArgument } from '@ballast/grpc-kit';

/**
 * A dataset schema as the service keeps it: checked once when it is put, then compiled into
 * validators (validation.ts). Stored as JSON; `parseSchema` is the only way in.
 */
export type FieldKind = 'float' | 'int' | 'string' | 'bool' | 'timestamp' | 'categorical';

export interface FieldDef {
  name: string;
  type: FieldKind;
  required: boolean;
  nullable: boolean;
  min?: number;
  max?: number;
  allowedValues: string[];
  minLength?: number;
  maxLength?: number;
  vocabulary: string[];
  description: string;
}

export interface SchemaDef {
  fields: FieldDef[];
  eventIdField: string;
  eventTimeField: string;
  entityFields: string[];
  segmentFields: string[];
}

export interface StoredSchema extends SchemaDef {
  major: number;
  minor: number;
  createdAt: Date;
}

const KINDS: Record<FieldType, FieldKind | undefined> = {
  [FieldType.UNSPECIFIED]: undefined,
  [FieldType.FLOAT]: 'float',
  [FieldType.INT]: 'int',
  [FieldType.STRING]: 'string',
  [FieldType.BOOL]: 'bool',
  [FieldType.TIMESTAMP]: 'timestamp',
  [FieldType.CATEGORICAL]: 'categorical',
};

export function fieldTypeOf(kind: FieldKind): FieldType {
  for (const [type, k] of Object.entries(KINDS)) if (k === kind) return Number(type) as FieldType;
  return FieldType.UNSPECIFIED;
}

const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const DATASET_NAME = /^[a-z0-9][a-z0-9._-]{0,127}$/;

export function checkDatasetName(name: string, field = 'name'): void {
  if (!DATASET_NAME.test(name)) {
    throw invalidArgument(field, 'must be 1-128 of [a-z0-9._-], starting with a letter or digit');
  }
}

const isNumeric = (kind: FieldKind) => kind === 'float' || kind === 'int';
const isText = (kind: FieldKind) => kind === 'string' || kind === 'categorical';

function parseField(field: Field, path: string): FieldDef {
  if (!FIELD_NAME.test(field.name)) {
    throw invalidArgument(`${path}.name`, 'must match [A-Za-z_][A-Za-z0-9_]* (at most 63 characters)');
  }
  const type = KINDS[field.type];
  if (type === undefined) throw invalidArgument(`${path}.type`, 'must be set');
  const def: FieldDef = {
    name: field.name,
    type,
    required: field.required,
    nullable: field.nullable,
    allowedValues: [...new Set(field.allowedValues)],
    vocabulary: [...new Set(field.vocabulary)],
    description: field.description,
  };
  if (field.min !== undefined || field.max !== undefined) {
    if (!isNumeric(type)) throw invalidArgument(`${path}.min`, 'min and max apply to float and int fields');
    for (const [key, bound] of [
      ['min', field.min],
      ['max', field.max],
    ] as const) {
      if (bound !== undefined && !Number.isFinite(bound)) {
        throw invalidArgument(`${path}.${key}`, 'must be a finite number');
      }
    }
    if (field.min !== undefined && field.max !== undefined && field.min > field.max) {
      throw invalidArgument(`${path}.max`, 'must be >= min');
    }
    if (field.min !== undefined) def.min = field.min;
    if (field.max !== undefined) def.max = field.max;
  }
  if (field.minLength !== undefined || field.maxLength !== undefined) {
    if (!isText(type)) {
      throw invalidArgument(`${path}.min_length`, 'length limits apply to string and categorical fields');
    }
    if (field.minLength !== undefined && field.maxLength !== undefined && field.minLength > field.maxLength) {
      throw invalidArgument(`${path}.max_length`, 'must be >= min_length');
    }
    if (field.minLength !== undefined) def.minLength = field.minLength;
    if (field.maxLength !== undefined) def.maxLength = field.maxLength;
  }
  if (def.allowedValues.length > 0 && !isText(type)) {
    throw invalidArgument(`${path}.allowed_values`, 'applies to string and categorical fields');
  }
  if (def.vocabulary.length > 0 && type !== 'categorical') {
    throw invalidArgument(`${path}.vocabulary`, 'applies to categorical fields');
  }
  return def;
}

/** Checks a schema from a request; every error names the field path and the rule. */
export function parseSchema(schema: Schema | undefined, path = 'schema'): SchemaDef {
  if (!schema) throw invalidArgument(path, 'is required');
  if (schema.fields.length === 0) throw invalidArgument(`${path}.fields`, 'must not be empty');
  const fields = schema.fields.map((f, i) => parseField(f, `${path}.fields[${i}]`));
  const byName = new Map<string, FieldDef>();
  fields.forEach((f, i) => {
    if (byName.has(f.name)) throw invalidArgument(`${path}.fields[${i}].name`, `duplicate field ${f.name}`);
    byName.set(f.name, f);
  });
  const keyField = (name: string, at: string, kinds: FieldKind[]) => {
    const field = byName.get(name);
    if (!field) throw invalidArgument(at, `must name a field of the schema, got ${JSON.stringify(name)}`);
    if (!kinds.includes(field.type)) throw invalidArgument(at, `must name a ${kinds.join(' or ')} field`);
    return field;
  };
  for (const [name, at, kinds] of [
    [schema.eventIdField, 'event_id_field', ['string', 'int']],
    [schema.eventTimeField, 'event_time_field', ['timestamp']],
  ] as const) {
    const field = keyField(name, `${path}.${at}`, [...kinds]);
    if (!field.required || field.nullable) {
      throw invalidArgument(`${path}.${at}`, 'must name a required, non-nullable field');
    }
  }
  const keyKinds: FieldKind[] = ['string', 'categorical', 'int', 'bool'];
  const unique = (names: string[], at: string) => {
    names.forEach((n, i) => {
      keyField(n, `${path}.${at}[${i}]`, keyKinds);
    });
    if (new Set(names).size !== names.length)
      throw invalidArgument(`${path}.${at}`, 'must not repeat a field');
    return [...names];
  };
  return {
    fields,
    eventIdField: schema.eventIdField,
    eventTimeField: schema.eventTimeField,
    entityFields: unique(schema.entityFields, 'entity_fields'),
    segmentFields: unique(schema.segmentFields, 'segment_fields'),
  };
}

export function schemaToProto(schema: StoredSchema) {
  return {
    fields: schema.fields.map((f) => ({
      name: f.name,
      type: fieldTypeOf(f.type),
      required: f.required,
      nullable: f.nullable,
      allowedValues: f.allowedValues,
      vocabulary: f.vocabulary,
      description: f.description,
      ...(f.min === undefined ? {} : { min: f.min }),
      ...(f.max === undefined ? {} : { max: f.max }),
      ...(f.minLength === undefined ? {} : { minLength: f.minLength }),
      ...(f.maxLength === undefined ? {} : { maxLength: f.maxLength }),
    })),
    eventIdField: schema.eventIdField,
    eventTimeField: schema.eventTimeField,
    entityFields: schema.entityFields,
    segmentFields: schema.segmentFields,
    major: schema.major,
    minor: schema.minor,
    createTime: { seconds: BigInt(Math.floor(schema.createdAt.getTime() / 1000)), nanos: 0 },
  };
}

export interface SchemaChanges {
  /** Changes that break consumers: allowed only in a new major version. */
  breaking: string[];
  /** Every change, breaking or not, one line each. */
  changes: string[];
}

/** JSON with sorted keys, so that definitions read back from the database compare equal. */
export function canonical(value: object): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** The definition part of a schema (no version), for equality checks. */
export function definitionOf(schema: SchemaDef): SchemaDef {
  const { fields, eventIdField, eventTimeField, entityFields, segmentFields } = schema;
  return { fields, eventIdField, eventTimeField, entityFields, segmentFields };
}

const sameList = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * What changed from `prev` to `next`. Breaking (for consumers of the data): dropping or
 * retyping a field, making a field nullable, and changing the event-id, event-time or
 * entity fields. Adding a required field breaks producers rather than consumers, and is
 * breaking too. Everything else (new optional fields, limits, vocabularies, segments) is
 * compatible.
 */
export function compareSchemas(prev: SchemaDef, next: SchemaDef): SchemaChanges {
  const breaking: string[] = [];
  const compatible: string[] = [];
  const nextByName = new Map(next.fields.map((f) => [f.name, f]));
  const prevByName = new Map(prev.fields.map((f) => [f.name, f]));
  for (const old of prev.fields) {
    const now = nextByName.get(old.name);
    if (!now) {
      breaking.push(`dropped field ${old.name}`);
      continue;
    }
    const before = breaking.length;
    if (now.type !== old.type) breaking.push(`retyped field ${old.name} from ${old.type} to ${now.type}`);
    if (now.nullable && !old.nullable) breaking.push(`made field ${old.name} nullable`);
    if (now.required && !old.required) breaking.push(`made field ${old.name} required`);
    if (now.nullable !== old.nullable || now.required !== old.required) {
      if (!now.nullable && old.nullable) compatible.push(`made field ${old.name} non-nullable`);
      if (!now.required && old.required) compatible.push(`made field ${old.name} optional`);
    } else if (breaking.length === before && canonical(old) !== canonical(now)) {
      compatible.push(`changed the limits or description of field ${old.name}`);
    }
  }
  for (const f of next.fields) {
    if (prevByName.has(f.name)) continue;
    if (f.required) breaking.push(`added required field ${f.name}`);
    else compatible.push(`added field ${f.name} (optional)`);
  }
  if (prev.eventIdField !== next.eventIdField) {
    breaking.push(`changed the event id field from ${prev.eventIdField} to ${next.eventIdField}`);
  }
  if (prev.eventTimeField !== next.eventTimeField) {
    breaking.push(`changed the event time field from ${prev.eventTimeField} to ${next.eventTimeField}`);
  }
  if (!sameList(prev.entityFields, next.entityFields)) {
    breaking.push(`changed the entity fields to [${next.entityFields.join(', ')}]`);
  }
  if (!sameList(prev.segmentFields, next.segmentFields)) {
    compatible.push(`changed the segment fields to [${next.segmentFields.join(', ')}]`);
  }
  return { breaking, changes: [...breaking, ...compatible] };
}
