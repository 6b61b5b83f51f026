import { createHash } from 'node:crypto';
import {
  Aggregation,
  CalendarPart,
  EncodingKind,
  type FeatureViewDefinition,
  FeatureViewDefinitionSchema,
  SourceFieldType,
  type TimeRange,
} from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { invalidArgument } from '@ballast/grpc-kit';
import { toBinary } from '@bufbuild/protobuf';
import { timestampMs } from '@bufbuild/protobuf/wkt';

/**
 * Feature view definitions: validation (every problem names the path of the offending part
 * of the definition) and versioning by content hash. `compileView` turns a valid definition
 * into the plan the transform engine runs.
 */

export const DAY_MS = 86_400_000;

export type CompiledFeature =
  | { kind: 'raw'; name: string; field: string }
  | { kind: 'lag'; name: string; field: string; days: number; timeField: string }
  | { kind: 'rolling'; name: string; field: string; aggregation: Aggregation; windowDays: number }
  | { kind: 'calendar'; name: string; part: CalendarPart; timeField: string; holidays: ReadonlySet<string> }
  | { kind: 'ratio'; name: string; numerator: string; denominator: string }
  | { kind: 'encoding'; name: string; field: string; oneHot: boolean; maxCategories: number }
  | { kind: 'standardize'; name: string; input: string };

export interface CompiledView {
  name: string;
  /** SHA-256 (hex) of the definition's canonical encoding. */
  version: string;
  definition: FeatureViewDefinition;
  dataset: string;
  eventTimeField: string;
  /** Declared source fields and their types. */
  fields: ReadonlyMap<string, SourceFieldType>;
  entityFields: readonly string[];
  segmentFields: readonly string[];
  label: { name: string; field: string; leadDays: number };
  features: readonly CompiledFeature[];
  /** Output columns in order (one-hot features give several). */
  featureNames: readonly string[];
  /** Online vectors older than this are marked OUTSIDE_MAX_AGE; undefined: never. */
  maxAgeMs: number | undefined;
  /** Event-time range [start, end) that encodings and standardization learn from. */
  fitWindow: { start: number; end: number };
}

const VIEW_NAME = /^[a-z0-9][a-z0-9._-]{0,127}$/;
const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const FEATURE_NAME = /^[a-z][a-z0-9_]{0,62}$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

const NUMERIC = new Set([SourceFieldType.FLOAT, SourceFieldType.INT, SourceFieldType.BOOL]);
const KEYLIKE = new Set([
  SourceFieldType.STRING,
  SourceFieldType.CATEGORICAL,
  SourceFieldType.INT,
  SourceFieldType.BOOL,
]);

/** The content hash a definition is versioned by: SHA-256 of its protobuf encoding. */
export function viewVersion(definition: FeatureViewDefinition): string {
  return createHash('sha256').update(toBinary(FeatureViewDefinitionSchema, definition)).digest('hex');
}

/** Protobuf fields this server does not know (a newer client's): refused, never ignored. */
function rejectUnknownFields(value: unknown, path: string): void {
  if (value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      rejectUnknownFields(item, `${path}[${i}]`);
    });
    return;
  }
  const unknown = (value as { $unknown?: { no: number }[] }).$unknown;
  if (unknown && unknown.length > 0) {
    throw invalidArgument(path, `unknown field (number ${unknown[0]?.no})`);
  }
  for (const [key, child] of Object.entries(value)) {
    if (key === '$unknown' || key === '$typeName') continue;
    // oneof groups ({case, value}) keep the path of the chosen member.
    if (key === 'value' && 'case' in value) rejectUnknownFields(child, path);
    else rejectUnknownFields(child, `${path}.${snake(key)}`);
  }
}

function snake(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function rangeMs(range: TimeRange | undefined): { start: number; end: number } {
  return {
    start: range?.startTime ? timestampMs(range.startTime) : Number.NEGATIVE_INFINITY,
    end: range?.endTime ? timestampMs(range.endTime) : Number.POSITIVE_INFINITY,
  };
}

/** Validates a definition and compiles it; throws INVALID_ARGUMENT naming the offending path. */
export function compileView(
  definition: FeatureViewDefinition | undefined,
  root = 'definition',
): CompiledView {
  if (!definition) throw invalidArgument(root, 'is required');
  rejectUnknownFields(definition, root);
  const at = (path: string) => `${root}.${path}`;

  if (!VIEW_NAME.test(definition.name)) {
    throw invalidArgument(at('name'), 'must match [a-z0-9][a-z0-9._-]*, at most 128 characters');
  }
  const source = definition.source;
  if (!source) throw invalidArgument(at('source'), 'is required');
  if (!VIEW_NAME.test(source.dataset)) {
    throw invalidArgument(at('source.dataset'), 'must name a dataset ([a-z0-9][a-z0-9._-]*)');
  }
  if (source.fields.length === 0)
    throw invalidArgument(at('source.fields'), 'must declare the fields the view reads');
  const fields = new Map<string, SourceFieldType>();
  source.fields.forEach((field, i) => {
    if (!FIELD_NAME.test(field.name)) {
      throw invalidArgument(at(`source.fields[${i}].name`), 'must match [A-Za-z_][A-Za-z0-9_]*');
    }
    if (fields.has(field.name))
      throw invalidArgument(at(`source.fields[${i}].name`), `duplicate field ${field.name}`);
    if (!SourceFieldType[field.type] || field.type === SourceFieldType.UNSPECIFIED) {
      throw invalidArgument(at(`source.fields[${i}].type`), 'must be set');
    }
    fields.set(field.name, field.type);
  });
  const declared = (path: string, name: string, what = 'field'): SourceFieldType => {
    const type = fields.get(name);
    if (type === undefined) {
      throw invalidArgument(
        path,
        `unknown ${what} ${JSON.stringify(name)}: not a field of source ${source.dataset}`,
      );
    }
    return type;
  };
  const timeField = (path: string, name: string, rule: string): string => {
    if (declared(path, name) !== SourceFieldType.TIMESTAMP) throw invalidArgument(path, rule);
    return name;
  };
  const numeric = (path: string, name: string): string => {
    if (!NUMERIC.has(declared(path, name)))
      throw invalidArgument(path, `${name} must be a float, int or bool field`);
    return name;
  };

  const eventTimeField = timeField(
    at('source.event_time_field'),
    source.eventTimeField,
    'the event time must be a timestamp field',
  );

  if (definition.entityFields.length === 0)
    throw invalidArgument(at('entity_fields'), 'must name at least one field');
  const keyFields = (list: readonly string[], name: string) => {
    list.forEach((field, i) => {
      const path = at(`${name}[${i}]`);
      const type = declared(path, field, name === 'entity_fields' ? 'entity field' : 'segment field');
      if (!KEYLIKE.has(type))
        throw invalidArgument(path, `${field} must be a string, categorical, int or bool field`);
      if (list.indexOf(field) !== i) throw invalidArgument(path, `duplicate field ${field}`);
    });
  };
  keyFields(definition.entityFields, 'entity_fields');
  keyFields(definition.segmentFields, 'segment_fields');

  const labelDef = definition.label;
  if (!labelDef) throw invalidArgument(at('label'), 'is required');
  if (!FEATURE_NAME.test(labelDef.name))
    throw invalidArgument(at('label.name'), 'must match [a-z][a-z0-9_]*');
  const label = {
    name: labelDef.name,
    field: numeric(at('label.field'), labelDef.field),
    leadDays: labelDef.leadDays,
  };
  // A feature reading the label's own field at the row's own time would hand the model its answer.
  const leaks = (field: string) => label.leadDays === 0 && field === label.field;
  const leak = (path: string) =>
    invalidArgument(path, `reads ${label.field} at the row's own time, which is the label (label leakage)`);

  if (definition.features.length === 0)
    throw invalidArgument(at('features'), 'must define at least one feature');
  const names = new Set<string>([label.name]);
  const singles = new Set<string>();
  const featureNames: string[] = [];
  const features: CompiledFeature[] = [];
  const earlier = (path: string, name: string): string => {
    if (name === label.name) throw invalidArgument(path, `${name} is the label (label leakage)`);
    if (!singles.has(name))
      throw invalidArgument(path, `must name an earlier single-column feature, got ${JSON.stringify(name)}`);
    return name;
  };
  const positive = (path: string, value: number) => {
    if (!(value > 0)) throw invalidArgument(path, `must be > 0, got ${value}`);
    return value;
  };

  definition.features.forEach((feature, i) => {
    const p = (part: string) => at(`features[${i}].${part}`);
    const name = feature.name;
    if (!FEATURE_NAME.test(name))
      throw invalidArgument(p('name'), 'must match [a-z][a-z0-9_]*, at most 63 characters');
    const t = feature.transform;
    let compiled: CompiledFeature;
    let outputs = [name];
    switch (t.case) {
      case 'raw': {
        const type = declared(p('raw.field'), t.value.field);
        if (!NUMERIC.has(type) && type !== SourceFieldType.TIMESTAMP) {
          throw invalidArgument(p('raw.field'), `${t.value.field} is not numeric: use an encoding`);
        }
        if (leaks(t.value.field)) throw leak(p('raw.field'));
        compiled = { kind: 'raw', name, field: t.value.field };
        break;
      }
      case 'lag': {
        const field = numeric(p('lag.field'), t.value.field);
        const days = positive(p('lag.days'), t.value.days);
        const on = t.value.timeField || eventTimeField;
        timeField(p('lag.time_field'), on, `a lag is measured on a timestamp field; ${on} is not one`);
        compiled = { kind: 'lag', name, field, days, timeField: on };
        break;
      }
      case 'rolling': {
        const field = numeric(p('rolling.field'), t.value.field);
        if (!Aggregation[t.value.aggregation] || t.value.aggregation === Aggregation.UNSPECIFIED) {
          throw invalidArgument(p('rolling.aggregation'), 'must be set');
        }
        const windowDays = positive(p('rolling.window_days'), t.value.windowDays);
        if (leaks(field)) throw leak(p('rolling.field'));
        compiled = { kind: 'rolling', name, field, aggregation: t.value.aggregation, windowDays };
        break;
      }
      case 'calendar': {
        if (!CalendarPart[t.value.part] || t.value.part === CalendarPart.UNSPECIFIED) {
          throw invalidArgument(p('calendar.part'), 'must be set');
        }
        const on = t.value.timeField || eventTimeField;
        timeField(p('calendar.time_field'), on, `${on} is not a timestamp field`);
        t.value.holidays.forEach((day, j) => {
          if (!DATE.test(day) || Number.isNaN(Date.parse(`${day}T00:00:00Z`))) {
            throw invalidArgument(p(`calendar.holidays[${j}]`), 'must be a date YYYY-MM-DD');
          }
        });
        compiled = {
          kind: 'calendar',
          name,
          part: t.value.part,
          timeField: on,
          holidays: new Set(t.value.holidays),
        };
        break;
      }
      case 'ratio':
        compiled = {
          kind: 'ratio',
          name,
          numerator: earlier(p('ratio.numerator'), t.value.numerator),
          denominator: earlier(p('ratio.denominator'), t.value.denominator),
        };
        break;
      case 'encoding': {
        const type = declared(p('encoding.field'), t.value.field);
        if (!KEYLIKE.has(type))
          throw invalidArgument(p('encoding.field'), `${t.value.field} is not categorical`);
        if (leaks(t.value.field)) throw leak(p('encoding.field'));
        const kind = t.value.kind;
        if (kind !== EncodingKind.INDEX && kind !== EncodingKind.ONE_HOT) {
          throw invalidArgument(p('encoding.kind'), 'must be set');
        }
        const max = t.value.maxCategories;
        const oneHot = kind === EncodingKind.ONE_HOT;
        if (oneHot && (max < 1 || max > 1000)) {
          throw invalidArgument(p('encoding.max_categories'), 'one-hot needs 1 to 1000 categories');
        }
        if (oneHot) outputs = Array.from({ length: max }, (_, k) => `${name}_${k}`);
        compiled = { kind: 'encoding', name, field: t.value.field, oneHot, maxCategories: max };
        break;
      }
      case 'standardize':
        compiled = { kind: 'standardize', name, input: earlier(p('standardize.input'), t.value.input) };
        break;
      default:
        throw invalidArgument(p('transform'), 'must be set');
    }
    for (const output of outputs) {
      if (names.has(output)) throw invalidArgument(p('name'), `duplicate name ${output}`);
      names.add(output);
      featureNames.push(output);
    }
    if (outputs.length === 1) singles.add(name);
    features.push(compiled);
  });

  let maxAgeMs: number | undefined;
  if (definition.onlineMaxAge) {
    maxAgeMs =
      Number(definition.onlineMaxAge.seconds) * 1000 + Math.floor(definition.onlineMaxAge.nanos / 1e6);
    positive(at('online_max_age'), maxAgeMs);
  }
  const fitWindow = rangeMs(definition.fitWindow);
  if (fitWindow.start >= fitWindow.end)
    throw invalidArgument(at('fit_window'), 'start_time must be before end_time');

  return {
    name: definition.name,
    version: viewVersion(definition),
    definition,
    dataset: source.dataset,
    eventTimeField,
    fields,
    entityFields: [...definition.entityFields],
    segmentFields: [...definition.segmentFields],
    label,
    features,
    featureNames,
    maxAgeMs,
    fitWindow,
  };
}

export { rangeMs };
