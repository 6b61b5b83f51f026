import { SourceFieldType } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { failedPrecondition } from '@ballast/grpc-kit';
import { yieldToLoop } from './event-loop.js';

/**
 * Records as the transform engine reads them: columnar batches from any source (ingest's
 * ReadVersion in the service, plain arrays in tests), gathered into one typed table.
 * Timestamps are unix milliseconds; a missing column or value is null.
 */
export type SourceValue = number | string | boolean | null | undefined;

export interface SourceBatch {
  rowCount: number;
  columns: Readonly<Record<string, readonly SourceValue[]>>;
}

/** Where a dataset version's records come from. */
export interface RecordSource {
  read(dataset: string, version: string, signal?: AbortSignal): AsyncIterable<SourceBatch>;
}

const STRINGS = new Set([SourceFieldType.STRING, SourceFieldType.CATEGORICAL]);

/** The declared fields of every record read, column by column: numbers (NaN = null) or strings. */
export class RecordTable {
  length = 0;
  private readonly numbers = new Map<string, number[]>();
  private readonly strings = new Map<string, (string | null)[]>();

  constructor(readonly fields: ReadonlyMap<string, SourceFieldType>) {
    for (const [name, type] of fields) {
      if (STRINGS.has(type)) this.strings.set(name, []);
      else this.numbers.set(name, []);
    }
  }

  append(batch: SourceBatch): void {
    for (const [name, type] of this.fields) {
      const column = batch.columns[name];
      const strings = this.strings.get(name);
      const numbers = this.numbers.get(name);
      for (let r = 0; r < batch.rowCount; r++) {
        const value = column?.[r] ?? null;
        if (strings) {
          if (value !== null && typeof value !== 'string') throw mismatch(name, type, value);
          strings.push(value);
        } else if (numbers) {
          if (value === null) numbers.push(Number.NaN);
          else if (type === SourceFieldType.BOOL && typeof value === 'boolean') numbers.push(value ? 1 : 0);
          else if (typeof value === 'number' && type !== SourceFieldType.BOOL) numbers.push(value);
          else throw mismatch(name, type, value);
        }
      }
    }
    this.length += batch.rowCount;
  }

  /**
   * Adopts columns already typed as append would make them (the staged records of a
   * streaming materialization, stage.ts): numbers with NaN for null, strings with null.
   */
  static fromColumns(
    fields: ReadonlyMap<string, SourceFieldType>,
    length: number,
    columns: ReadonlyMap<string, number[] | (string | null)[]>,
  ): RecordTable {
    const table = new RecordTable(fields);
    for (const name of fields.keys()) {
      const column = columns.get(name);
      if (!column || column.length !== length) throw new Error(`column ${name} must hold ${length} values`);
      if (table.strings.has(name)) table.strings.set(name, column as (string | null)[]);
      else table.numbers.set(name, column as number[]);
    }
    table.length = length;
    return table;
  }

  /** Whether a field is held as text (string, categorical) rather than as numbers. */
  isText(field: string): boolean {
    return this.strings.has(field);
  }

  /** A numeric, bool or timestamp column (NaN = null). */
  numeric(field: string): readonly number[] {
    const column = this.numbers.get(field);
    if (!column) throw new Error(`${field} is not a numeric field`);
    return column;
  }

  /** A field's values as text (for keys, segments and encodings); null stays null. */
  text(field: string): readonly (string | null)[] {
    const strings = this.strings.get(field);
    if (strings) return strings;
    const numbers = this.numeric(field);
    const bool = this.fields.get(field) === SourceFieldType.BOOL;
    return numbers.map((v) => (Number.isNaN(v) ? null : bool ? String(v === 1) : String(v)));
  }
}

function mismatch(field: string, type: SourceFieldType, value: SourceValue) {
  return failedPrecondition(
    `dataset field ${field} does not match the view's source: declared ${SourceFieldType[type]}, got ${typeof value} ${JSON.stringify(value)}`,
  );
}

/**
 * Reads a whole dataset version into a table of the declared fields. The event loop runs
 * between batches: a source whose batches are already at hand (a stream that buffered
 * several, the in-memory one) resolves each next() as a microtask, so the whole read would
 * otherwise hold the loop (about a second per million records).
 */
export async function readTable(
  source: RecordSource,
  dataset: string,
  version: string,
  fields: ReadonlyMap<string, SourceFieldType>,
  signal?: AbortSignal,
): Promise<RecordTable> {
  const table = new RecordTable(fields);
  for await (const batch of source.read(dataset, version, signal)) {
    table.append(batch);
    await yieldToLoop();
  }
  return table;
}

/** A source over batches held in memory, keyed by dataset and version (tests, backfills from files). */
export class MemorySource implements RecordSource {
  private readonly versions = new Map<string, SourceBatch[]>();

  put(dataset: string, version: string, batches: SourceBatch[]): void {
    this.versions.set(`${dataset}@${version}`, batches);
  }

  async *read(dataset: string, version: string): AsyncIterable<SourceBatch> {
    const batches = this.versions.get(`${dataset}@${version}`);
    if (!batches) throw failedPrecondition(`dataset ${dataset} has no version ${version}`);
    yield* batches;
  }
}

/** Row objects to one columnar batch (tests and fixtures). */
export function batchOf(rows: readonly Record<string, SourceValue>[]): SourceBatch {
  const columns: Record<string, SourceValue[]> = {};
  rows.forEach((row, i) => {
    for (const [key, value] of Object.entries(row)) {
      columns[key] ??= new Array(rows.length).fill(null);
      (columns[key] as SourceValue[])[i] = value;
    }
  });
  return { rowCount: rows.length, columns };
}
