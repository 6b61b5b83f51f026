import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { parse } from 'csv-parse';
import type { BallastFile } from './ballast-file.js';

/**
 * `ballast schema infer`: a dataset's schema guessed from a sample of a CSV or JSONL file
 * (types, required, numeric ranges, categorical vocabularies), written as a `ballast.yaml`
 * for the user to read and edit before `ballast apply`. A guess is only as good as the
 * sample: ranges are the sample's, so they are widened by half their span on each side.
 */
export interface InferOptions {
  dataset: string;
  /** Rows read (default 1000). */
  sample?: number;
  /** With `label` and `entity`: a feature view and a model to train on it, too. */
  label?: string;
  entity?: string;
  /** The model's owner team (the registry needs one; default `default`). */
  owner?: string;
}

type Guess = 'int' | 'float' | 'bool' | 'timestamp' | 'categorical' | 'string';

const CATEGORICAL_MAX = 50;

async function sampleRows(path: string, limit: number): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  if (/\.jsonl?$/i.test(path)) {
    const lines = createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY });
    for await (const line of lines) {
      if (!line.trim()) continue;
      rows.push(JSON.parse(line) as Record<string, unknown>);
      if (rows.length >= limit) break;
    }
    lines.close();
    return rows;
  }
  const parser = createReadStream(path).pipe(parse({ columns: true, skip_empty_lines: true, trim: true }));
  for await (const row of parser) {
    rows.push(row as Record<string, unknown>);
    if (rows.length >= limit) break;
  }
  parser.destroy();
  return rows;
}

const isTime = (v: string) =>
  /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(v) && !Number.isNaN(Date.parse(v));

function guess(values: unknown[]): Guess {
  const texts = values.map(String);
  if (values.every((v) => typeof v === 'boolean' || /^(true|false)$/i.test(String(v)))) return 'bool';
  if (texts.every((v) => /^-?\d+$/.test(v))) return 'int';
  if (texts.every((v) => v !== '' && Number.isFinite(Number(v)))) return 'float';
  if (texts.every(isTime)) return 'timestamp';
  const distinct = new Set(texts).size;
  return distinct <= CATEGORICAL_MAX && distinct <= values.length / 2 ? 'categorical' : 'string';
}

/** The column `ballast ingest` fills with a record's content hash when a file has no id of its own. */
const DERIVED_EVENT_ID = 'event_id';

/**
 * Ingest drops records whose event id it has seen, so the schema needs one: a required
 * string or int column whose sampled values are all distinct, or else a `event_id` column
 * that `ballast ingest` derives from each record's content (the same row sent twice is
 * then dropped as a duplicate, which is what a re-run of the same file should do).
 */
function eventIdField(fields: Record<string, unknown>[], rows: Record<string, unknown>[]): string {
  const unique = fields.find(
    (f) =>
      f.required === true &&
      (f.type === 'string' || f.type === 'int') &&
      new Set(rows.map((r) => String(r[f.name as string]))).size === rows.length,
  );
  if (unique) return unique.name as string;
  if (fields.some((f) => f.name === DERIVED_EVENT_ID))
    throw new Error(
      `no column identifies a record, and "${DERIVED_EVENT_ID}" is taken by a column that does not: give each record a unique id`,
    );
  fields.unshift({ name: DERIVED_EVENT_ID, type: 'string', required: true });
  return DERIVED_EVENT_ID;
}

const round = (n: number) => Number(n.toPrecision(6));

export async function inferFile(path: string, options: InferOptions): Promise<BallastFile> {
  const rows = await sampleRows(path, options.sample ?? 1000);
  if (rows.length === 0) throw new Error(`${path}: no records to infer a schema from`);
  const names = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const fields = names.map((name) => {
    const values = rows.map((r) => r[name]).filter((v) => v !== undefined && v !== null && v !== '');
    const type = values.length === 0 ? 'string' : guess(values);
    const field: Record<string, unknown> = { name, type };
    if (values.length === rows.length) field.required = true;
    else field.nullable = true;
    if (type === 'int' || type === 'float') {
      const numbers = values.map(Number);
      const [lo, hi] = [Math.min(...numbers), Math.max(...numbers)];
      const slack = (hi - lo) / 2;
      // A measure never seen below zero (rain, counts) stays at or above zero.
      const floor = lo >= 0 ? 0 : Number.NEGATIVE_INFINITY;
      field.min = Math.max(floor, type === 'int' ? Math.floor(lo - slack) : round(lo - slack));
      field.max = type === 'int' ? Math.ceil(hi + slack) : round(hi + slack);
    }
    if (type === 'categorical') field.vocabulary = [...new Set(values.map(String))].sort();
    return field;
  });
  const eventTime = fields.find((f) => f.type === 'timestamp' && f.required)?.name as string | undefined;
  const schema: Record<string, unknown> = { fields, eventIdField: eventIdField(fields, rows) };
  if (eventTime) schema.eventTimeField = eventTime;
  const file: BallastFile = { datasets: [{ name: options.dataset, schema }] };
  if (options.entity) schema.entityFields = [options.entity];
  if (options.label && options.entity) {
    const byName = new Map(fields.map((f) => [f.name as string, f]));
    const label = byName.get(options.label);
    if (!label || (label.type !== 'float' && label.type !== 'int'))
      throw new Error(`--label: ${options.label} is not a numeric field of ${path}`);
    if (!byName.has(options.entity)) throw new Error(`--entity: ${options.entity} is not a field of ${path}`);
    if (!eventTime)
      throw new Error(`${path}: a feature view needs a timestamp field for event time; none was found`);
    const numeric = fields.filter(
      (f) =>
        (f.type === 'float' || f.type === 'int') && f.name !== options.label && f.name !== options.entity,
    );
    const sourceFields = [byName.get(options.entity), label, ...numeric, byName.get(eventTime)].map((f) => ({
      name: f?.name,
      type: f?.type,
    }));
    file.featureViews = [
      {
        name: options.dataset,
        source: { dataset: options.dataset, eventTimeField: eventTime, fields: sourceFields },
        entityFields: [options.entity],
        label: { name: options.label.toLowerCase(), field: options.label },
        features: numeric.map((f) => ({ name: String(f.name).toLowerCase(), raw: { field: f.name } })),
      },
    ];
    file.models = [{ name: options.dataset, task: 'regression', ownerTeam: options.owner ?? 'default' }];
  }
  return file;
}
