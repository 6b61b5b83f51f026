import type { Column, RecordBatch, Value } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { BallastError, invalidArgument } from '@ballast/grpc-kit';
import type { FieldDef, StoredSchema } from './schema.js';

/**
 * Record validation, compiled: for each schema and column layout (which fields a batch
 * carries, in which typed list) a list of column checkers and formatters is built once,
 * with only the rules that field has. A batch then runs one tight loop per column over
 * packed typed lists; nothing looks the schema up per record.
 */

export interface RowViolation {
  row: number;
  field: string;
  rule: string;
  message: string;
}

export interface FieldQualityCounts {
  field: string;
  count: number;
  nullCount: number;
  outOfRange: number;
  invalid: number;
  newValues: string[];
  newValueCount: number;
}

export interface QuarantineRow {
  row: number;
  eventId: string;
  fields: string[];
  values: Value[];
  violations: RowViolation[];
}

export interface ValidatedBatch {
  rowCount: number;
  /** The accepted rows as one JSON array of {"i": event id, "t": event time, "d": record}. */
  rowsJson: string;
  validCount: number;
  quarantined: QuarantineRow[];
  quality: FieldQualityCounts[];
}

export const MIN_TIMESTAMP_SECONDS = -62135596800n; // 0001-01-01T00:00:00Z
export const MAX_TIMESTAMP_SECONDS = 253402300799n; // 9999-12-31T23:59:59Z
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = -MAX_SAFE;

type ColumnCase = NonNullable<Column['values']['case']>;

/** What each field type accepts from a batch. Floats take ints too (widening, never narrowing). */
const ACCEPTS: Record<FieldDef['type'], ColumnCase[]> = {
  float: ['doubles', 'ints'],
  int: ['ints'],
  string: ['strings'],
  categorical: ['strings'],
  bool: ['bools'],
  timestamp: ['timestamps'],
};

const dayPrefixes = new Map<number, string>();
const two = (n: number) => (n < 10 ? `0${n}` : String(n));

/** RFC 3339 in UTC with 0, 3, 6 or 9 fraction digits, as protobuf's JSON mapping writes it. */
export function formatTimestamp(seconds: bigint, nanos: number): string {
  // The date part comes from a cache per day (batches mostly share a few days), the time of
  // day from integer arithmetic: several times faster than Date#toISOString per value.
  const s = Number(seconds);
  const day = Math.floor(s / 86_400);
  let prefix = dayPrefixes.get(day);
  if (prefix === undefined) {
    prefix = new Date(day * 86_400_000).toISOString().slice(0, 11);
    if (dayPrefixes.size >= 4_096) dayPrefixes.clear();
    dayPrefixes.set(day, prefix);
  }
  const t = s - day * 86_400;
  const base = `${prefix}${two(Math.floor(t / 3_600))}:${two(Math.floor(t / 60) % 60)}:${two(t % 60)}`;
  if (nanos === 0) return `${base}Z`;
  let frac = String(nanos).padStart(9, '0');
  if (frac.endsWith('000000')) frac = frac.slice(0, 3);
  else if (frac.endsWith('000')) frac = frac.slice(0, 6);
  return `${base}.${frac}Z`;
}

/** The inverse of formatTimestamp (any fraction length). */
export function parseTimestamp(text: string): { seconds: bigint; nanos: number } {
  const match = /^(.*?)(?:\.(\d{1,9}))?Z$/.exec(text);
  const ms = Date.parse(`${match?.[1] ?? text}Z`);
  const fraction = match?.[2] ?? '';
  return { seconds: BigInt(Math.floor(ms / 1000)), nanos: Number(fraction.padEnd(9, '0') || 0) };
}

function codePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdbff) n++;
  }
  return n;
}

const shown = (v: unknown) => {
  const text = typeof v === 'string' ? JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v) : String(v);
  return text;
};

interface Ctx {
  rowCount: number;
  isNull: Uint8Array;
  bad: Uint8Array;
  report: (row: number, rule: string, message: string) => void;
  outOfRange: number;
  /** Known categorical values (vocabulary and the latest version's); undefined for other fields. */
  known: ReadonlySet<string> | undefined;
  newValues: Set<string>;
}

/** Checks one column's non-null rows; marks bad rows through ctx.report. */
type Checker = (values: unknown, ctx: Ctx) => void;
/** Appends `"name":value` to each good row's JSON, and returns per-row text for key fields. */
type Formatter = (values: unknown, nanos: number[] | undefined, row: number) => string;

function numericChecker(field: FieldDef, fromInts: boolean): Checker {
  const { min, max } = field;
  const hasMin = min !== undefined;
  const hasMax = max !== undefined;
  return (values, ctx) => {
    const list = values as ArrayLike<number | bigint>;
    for (let r = 0; r < ctx.rowCount; r++) {
      if (ctx.isNull[r]) continue;
      let x: number;
      if (fromInts) {
        const b = list[r] as bigint;
        if (b > MAX_SAFE || b < MIN_SAFE) {
          ctx.report(r, 'safe_integer', `${b} is outside +-(2^53 - 1)`);
          continue;
        }
        x = Number(b);
      } else {
        x = list[r] as number;
        if (!Number.isFinite(x)) {
          ctx.report(r, 'finite', `${x} is not a finite number`);
          continue;
        }
      }
      if (hasMin && x < (min as number)) {
        ctx.outOfRange++;
        ctx.report(r, 'min', `${x} is below min ${min}`);
      } else if (hasMax && x > (max as number)) {
        ctx.outOfRange++;
        ctx.report(r, 'max', `${x} is above max ${max}`);
      }
    }
  };
}

function textChecker(field: FieldDef): Checker {
  const { minLength, maxLength } = field;
  const allowed = field.allowedValues.length > 0 ? new Set(field.allowedValues) : undefined;
  const categorical = field.type === 'categorical';
  return (values, ctx) => {
    const list = values as string[];
    const known = ctx.known;
    for (let r = 0; r < ctx.rowCount; r++) {
      if (ctx.isNull[r]) continue;
      const s = list[r] as string;
      if (s.indexOf('\u0000') !== -1) {
        ctx.report(r, 'nul', 'contains U+0000');
        continue;
      }
      // s.length counts UTF-16 units, an upper bound on code points: count only when it matters.
      if (maxLength !== undefined && s.length > maxLength && codePoints(s) > maxLength) {
        ctx.report(r, 'max_length', `is longer than ${maxLength} characters`);
        continue;
      }
      if (minLength !== undefined && (s.length < minLength || codePoints(s) < minLength)) {
        ctx.report(r, 'min_length', `is shorter than ${minLength} characters`);
        continue;
      }
      if (allowed && !allowed.has(s)) {
        ctx.report(r, 'allowed_values', `${shown(s)} is not one of the allowed values`);
        continue;
      }
      if (categorical && known && !known.has(s)) ctx.newValues.add(s);
    }
  };
}

const boolChecker: Checker = () => {};

const timestampChecker: Checker = (values, ctx) => {
  const { seconds, nanos } = values as { seconds: bigint[]; nanos: number[] };
  const hasNanos = nanos.length > 0;
  for (let r = 0; r < ctx.rowCount; r++) {
    if (ctx.isNull[r]) continue;
    const s = seconds[r] as bigint;
    if (s < MIN_TIMESTAMP_SECONDS || s > MAX_TIMESTAMP_SECONDS) {
      ctx.report(r, 'range', `${s} s is outside 0001-01-01..9999-12-31`);
    } else if (hasNanos) {
      const n = nanos[r] as number;
      if (n < 0 || n > 999_999_999) ctx.report(r, 'range', `nanos ${n} is outside 0..999999999`);
    }
  }
};

function checkerFor(field: FieldDef, kind: ColumnCase): Checker {
  switch (field.type) {
    case 'float':
    case 'int':
      return numericChecker(field, kind === 'ints');
    case 'string':
    case 'categorical':
      return textChecker(field);
    case 'bool':
      return boolChecker;
    case 'timestamp':
      return timestampChecker;
  }
}

function formatterFor(kind: ColumnCase): Formatter {
  switch (kind) {
    case 'doubles':
      return (values, _n, r) => String((values as number[])[r]);
    case 'ints':
      return (values, _n, r) => String((values as bigint[])[r]);
    case 'strings':
      return (values, _n, r) => JSON.stringify((values as string[])[r]);
    case 'bools':
      return (values, _n, r) => ((values as boolean[])[r] ? 'true' : 'false');
    case 'timestamps':
      return (values, nanos, r) =>
        `"${formatTimestamp((values as bigint[])[r] as bigint, nanos && nanos.length > 0 ? (nanos[r] as number) : 0)}"`;
  }
}

/** The typed list inside a column, and its nanos for timestamps. */
function listOf(column: Column): { values: unknown; nanos: number[] | undefined; length: number } {
  const v = column.values;
  switch (v.case) {
    case undefined:
      return { values: undefined, nanos: undefined, length: -1 };
    case 'timestamps':
      return { values: v.value.seconds, nanos: v.value.nanos, length: v.value.seconds.length };
    default:
      return { values: v.value.values, nanos: undefined, length: v.value.values.length };
  }
}

interface FieldPlan {
  field: FieldDef;
  /** Index of the batch column carrying this field, -1 when the batch has none. */
  column: number;
  kind: ColumnCase | undefined;
  /** undefined when the column's type does not fit the field (every non-null row is a type violation). */
  check: Checker | undefined;
  format: Formatter | undefined;
  key: string;
}

export interface CompiledSchema {
  readonly schema: StoredSchema;
  readonly fieldsByName: ReadonlyMap<string, FieldDef>;
  validate(batch: RecordBatch, known?: ReadonlyMap<string, ReadonlySet<string>>): ValidatedBatch;
}

export interface Limits {
  maxBatchRecords: number;
}

/** Structural checks: a batch that fails one is refused whole (nothing is written). */
function checkStructure(
  batch: RecordBatch,
  fieldsByName: ReadonlyMap<string, FieldDef>,
  schema: StoredSchema,
) {
  const seen = new Set<string>();
  batch.columns.forEach((column, i) => {
    const at = `batch.columns[${i}]`;
    if (!fieldsByName.has(column.name)) {
      throw invalidArgument(
        `${at}.name`,
        `unknown field ${JSON.stringify(column.name)}: schema ${schema.major}.${schema.minor} has ${[...fieldsByName.keys()].join(', ')}`,
      );
    }
    if (seen.has(column.name)) throw invalidArgument(`${at}.name`, `duplicate column ${column.name}`);
    seen.add(column.name);
    const { length, nanos } = listOf(column);
    if (length !== -1 && length !== batch.rowCount) {
      throw invalidArgument(`${at}.values`, `must have row_count (${batch.rowCount}) values, has ${length}`);
    }
    if (nanos && nanos.length !== 0 && nanos.length !== batch.rowCount) {
      throw invalidArgument(
        `${at}.timestamps.nanos`,
        `must be empty or have row_count (${batch.rowCount}) values`,
      );
    }
    let previous = -1;
    for (const row of column.nullRows) {
      if (row <= previous || row >= batch.rowCount) {
        throw invalidArgument(
          `${at}.null_rows`,
          `must be ascending rows below row_count (${batch.rowCount})`,
        );
      }
      previous = row;
    }
  });
}

function valueAt(column: Column, row: number, isNull: boolean): Value {
  const v = column.values;
  if (isNull || v.case === undefined) return { kind: { case: 'nullValue', value: 0 } } as Value;
  switch (v.case) {
    case 'doubles':
      return { kind: { case: 'doubleValue', value: v.value.values[row] as number } } as Value;
    case 'ints':
      return { kind: { case: 'intValue', value: v.value.values[row] as bigint } } as Value;
    case 'strings':
      return { kind: { case: 'stringValue', value: v.value.values[row] as string } } as Value;
    case 'bools':
      return { kind: { case: 'boolValue', value: v.value.values[row] as boolean } } as Value;
    case 'timestamps':
      return {
        kind: {
          case: 'timestampValue',
          value: { seconds: v.value.seconds[row] as bigint, nanos: v.value.nanos[row] ?? 0 },
        },
      } as Value;
  }
}

export function compileSchema(schema: StoredSchema): CompiledSchema {
  // Sorted by name: the canonical record JSON (and so the content hash) does not depend on
  // the order of fields in the schema or in a batch.
  const fields = [...schema.fields].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const fieldsByName = new Map(fields.map((f) => [f.name, f]));
  const plans = new Map<string, FieldPlan[]>();

  const planFor = (batch: RecordBatch): FieldPlan[] => {
    const layout = batch.columns.map((c) => `${c.name}:${c.values.case ?? 'null'}`).join(',');
    let plan = plans.get(layout);
    if (plan) return plan;
    const index = new Map(batch.columns.map((c, i) => [c.name, i]));
    plan = fields.map((declared) => {
      // An event id must identify something: the empty string does not.
      const field =
        declared.name === schema.eventIdField && declared.minLength === undefined
          ? { ...declared, minLength: 1 }
          : declared;
      const column = index.get(field.name) ?? -1;
      const kind = column === -1 ? undefined : batch.columns[column]?.values.case;
      const fits = kind !== undefined && ACCEPTS[field.type].includes(kind);
      return {
        field,
        column,
        kind,
        check: fits ? checkerFor(field, kind) : undefined,
        format: fits ? formatterFor(kind) : undefined,
        key: `${JSON.stringify(field.name)}:`,
      };
    });
    if (plans.size > 64) plans.clear();
    plans.set(layout, plan);
    return plan;
  };

  const validate = (batch: RecordBatch, known?: ReadonlyMap<string, ReadonlySet<string>>): ValidatedBatch => {
    checkStructure(batch, fieldsByName, schema);
    const rowCount = batch.rowCount;
    const plan = planFor(batch);
    const bad = new Uint8Array(rowCount);
    const violations = new Map<number, RowViolation[]>();
    const quality: FieldQualityCounts[] = [];
    const nullMasks: Uint8Array[] = [];

    for (const p of plan) {
      const { field } = p;
      const isNull = new Uint8Array(rowCount);
      nullMasks.push(isNull);
      const ctx: Ctx = {
        rowCount,
        isNull,
        bad,
        outOfRange: 0,
        known:
          known?.get(field.name) ?? (field.vocabulary.length > 0 ? new Set(field.vocabulary) : undefined),
        newValues: new Set(),
        report: () => {},
      };
      let invalid = 0;
      ctx.report = (row, rule, message) => {
        invalid++;
        bad[row] = 1;
        let list = violations.get(row);
        if (!list) {
          list = [];
          violations.set(row, list);
        }
        list.push({ row, field: field.name, rule, message: `${field.name}: ${message}` });
      };
      let nullCount = 0;
      if (p.column === -1) {
        nullCount = rowCount;
        isNull.fill(1);
        if (field.required) for (let r = 0; r < rowCount; r++) ctx.report(r, 'required', 'is required');
      } else {
        const column = batch.columns[p.column] as Column;
        if (p.kind === undefined) isNull.fill(1);
        else for (const r of column.nullRows) isNull[r] = 1;
        if (!field.nullable) {
          for (let r = 0; r < rowCount; r++) if (isNull[r]) ctx.report(r, 'nullable', 'must not be null');
        }
        for (let r = 0; r < rowCount; r++) nullCount += isNull[r] as number;
        if (p.kind !== undefined) {
          if (p.check) {
            const { values, nanos } = listOf(column);
            p.check(p.kind === 'timestamps' ? { seconds: values, nanos } : values, ctx);
          } else {
            for (let r = 0; r < rowCount; r++) {
              if (!isNull[r]) ctx.report(r, 'type', `expected ${field.type}, got ${p.kind}`);
            }
          }
        }
      }
      const newValues = [...ctx.newValues];
      quality.push({
        field: field.name,
        count: rowCount,
        nullCount,
        outOfRange: ctx.outOfRange,
        invalid,
        newValues: newValues.slice(0, 20),
        newValueCount: newValues.length,
      });
    }

    // Formatting: each present field's values as JSON text, column by column (tight,
    // monomorphic loops), then every good row assembled in one pass.
    const present: { key: string; texts: string[] }[] = [];
    let ids: string[] = [];
    let times: string[] = [];
    plan.forEach((p, fi) => {
      if (p.column === -1 || !p.format) return;
      const isNull = nullMasks[fi] as Uint8Array;
      const { values, nanos } = listOf(batch.columns[p.column] as Column);
      const format = p.format;
      const texts: string[] = new Array(rowCount);
      for (let r = 0; r < rowCount; r++) {
        if (!bad[r]) texts[r] = isNull[r] ? 'null' : format(values, nanos, r);
      }
      present.push({ key: `,${p.key}`, texts });
      if (p.field.name === schema.eventIdField) {
        ids = p.kind === 'ints' ? texts.map((t) => `"${t}"`) : texts;
      }
      if (p.field.name === schema.eventTimeField) times = texts;
    });
    const first = present[0];
    if (first) first.key = first.key.slice(1);
    // One string grown by += (V8 keeps it as a rope and flattens it once, when it is sent):
    // measured many times faster than collecting pieces and joining them.
    let json = '[';
    let validCount = 0;
    for (let r = 0; r < rowCount; r++) {
      if (bad[r]) continue;
      json += `${validCount === 0 ? '' : ','}{"i":${ids[r]},"t":${times[r]},"d":{`;
      for (let f = 0; f < present.length; f++) {
        const column = present[f] as { key: string; texts: string[] };
        json += column.key + (column.texts[r] as string);
      }
      json += '}}';
      validCount++;
    }
    json += ']';

    const quarantined: QuarantineRow[] = [];
    if (violations.size > 0) {
      const names = batch.columns.map((c) => c.name);
      const nulls = batch.columns.map((c) => new Set(c.nullRows));
      const idIndex = names.indexOf(schema.eventIdField);
      for (const [row, list] of [...violations].sort((a, b) => a[0] - b[0])) {
        const values = batch.columns.map((c, i) => valueAt(c, row, (nulls[i] as Set<number>).has(row)));
        const id = values[idIndex]?.kind;
        const eventId =
          id?.case === 'stringValue' || id?.case === 'intValue' ? String(id.value).slice(0, 200) : '';
        quarantined.push({ row, eventId, fields: names, values, violations: list });
      }
    }
    return { rowCount, rowsJson: json, validCount, quarantined, quality };
  };

  return { schema, fieldsByName, validate };
}

/** Batch-level limits, checked before any work. */
export function checkBatchLimits(batch: RecordBatch | undefined, limits: Limits): RecordBatch {
  if (!batch) throw invalidArgument('batch', 'is required');
  if (batch.rowCount > limits.maxBatchRecords) {
    throw new BallastError(
      'resource_exhausted',
      `batch has ${batch.rowCount} records; the limit is ${limits.maxBatchRecords} per batch (BALLAST_INGEST_MAX_BATCH_RECORDS)`,
    );
  }
  if (batch.source.length > 200 || batch.source.includes('\u0000')) {
    throw invalidArgument('batch.source', 'must be at most 200 characters, without U+0000');
  }
  return batch;
}
