import { randomBytes } from 'node:crypto';
import type { Sql } from '@ballast/storage';
import type { CompiledView } from './definition.js';
import { yieldToLoop } from './event-loop.js';
import { packVector } from './online.js';
import { RecordTable } from './records.js';
import type { FeatureRows } from './transforms.js';

/**
 * A dataset version's records staged in the offline store, so that a streaming
 * materialization (stream.ts) holds a few thousand records at a time instead of the version.
 * One unlogged table per run (a crash loses nothing that the run would keep; the table is
 * dropped when the run ends, failed or not, or by a later run's sweep once a day old if the
 * process died) holding each valid record's entity key, event
 * time, position in the version (ingest order) and declared fields: numbers as float64s
 * (NaN = null) in one bytea, text as a JSON array (JSON escapes NUL, which text refuses).
 * Read back in the view's row order, entity key (byte order, "C") then event time then
 * position, in keyset pages; a second table keeps each entity's latest vector until the
 * rows are committed and the online store can take them.
 */

/** Staged rows per INSERT: each is built and serialized on the service's thread (see store.ts). */
const INSERT_CHUNK = { pglite: 500, postgres: 1_000 } as const;

/** A stage older than this belongs to a run that died (sweep). */
const STALE_MS = 24 * 3_600_000;

interface StagedRow {
  entity_key: string;
  event_time: number;
  record: string;
  numbers: Uint8Array;
  strings: string;
}

/** Complete entity groups in row order: their records as a table, and each one's position in the version. */
export interface StagedChunk {
  table: RecordTable;
  records: Int32Array;
}

export class Stage {
  private readonly numericFields: string[] = [];
  private readonly textFields: string[] = [];

  private constructor(
    private readonly sql: () => Sql,
    private readonly view: CompiledView,
    readonly table: string,
  ) {
    const probe = new RecordTable(view.fields);
    for (const name of view.fields.keys()) {
      if (probe.isText(name)) this.textFields.push(name);
      else this.numericFields.push(name);
    }
  }

  static async create(sql: () => Sql, view: CompiledView): Promise<Stage> {
    await Stage.sweep(sql());
    const stage = new Stage(sql, view, `stage_${randomBytes(8).toString('hex')}`);
    // The comment is the time it was made, by which sweep finds the stages of dead runs.
    await sql().exec(`
      CREATE UNLOGGED TABLE "${stage.table}" (
        entity_key text COLLATE "C" NOT NULL,
        event_time double precision NOT NULL,
        record bigint NOT NULL,
        numbers bytea NOT NULL,
        strings text NOT NULL
      );
      CREATE UNLOGGED TABLE "${stage.table}_latest" (
        entity_key text COLLATE "C" PRIMARY KEY,
        vector bytea NOT NULL
      );
      COMMENT ON TABLE "${stage.table}" IS '${Date.now()}';`);
    // PGlite runs a statement on this thread: one CREATE INDEX over a million records would
    // hold the event loop for seconds, so there the index is kept up insert by insert.
    if (sql().kind === 'pglite') await stage.createIndex();
    return stage;
  }

  /**
   * Drops the stages of runs that ended without dropping their own (the process was
   * killed): those made more than `maxAgeMs` ago, a day by default, far longer than a run.
   */
  static async sweep(sql: Sql, maxAgeMs = STALE_MS): Promise<string[]> {
    const { rows } = await sql.query<{ name: string; made: string | null }>(
      `SELECT c.relname AS name, obj_description(c.oid, 'pg_class') AS made
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname ~ '^stage_[0-9a-f]{16}$'`,
    );
    const stale = rows.filter((r) => !(Number(r.made) > Date.now() - maxAgeMs)).map((r) => r.name);
    for (const name of stale) {
      await sql.exec(`DROP TABLE IF EXISTS "${name}"; DROP TABLE IF EXISTS "${name}_latest";`);
    }
    return stale;
  }

  /**
   * Stages the records of `table` whose key is not null (`keys`, transforms.ts rowKeys);
   * `first` is the position in the version of its first record.
   */
  async append(table: RecordTable, keys: readonly (string | null)[], first: number): Promise<void> {
    const time = table.numeric(this.view.eventTimeField);
    const numbers = this.numericFields.map((f) => table.numeric(f));
    const texts = this.textFields.map((f) => table.text(f));
    const chunk = INSERT_CHUNK[this.sql().kind];
    const bytes = Buffer.alloc(8 * numbers.length);
    for (let at = 0; at < table.length; at += chunk) {
      const k: string[] = [];
      const t: number[] = [];
      const r: number[] = [];
      const n: string[] = [];
      const s: string[] = [];
      for (let i = at; i < Math.min(table.length, at + chunk); i++) {
        const key = keys[i];
        if (key === null || key === undefined) continue;
        k.push(key);
        t.push(time[i] as number);
        r.push(first + i);
        numbers.forEach((column, j) => {
          bytes.writeDoubleLE(column[i] as number, 8 * j);
        });
        n.push(bytes.toString('hex'));
        s.push(JSON.stringify(texts.map((column) => column[i] ?? null)));
      }
      if (k.length === 0) continue;
      await this.sql().query(
        `INSERT INTO "${this.table}" (entity_key, event_time, record, numbers, strings)
         SELECT k, t, r, decode(n, 'hex'), s
         FROM unnest($1::text[], $2::float8[], $3::bigint[], $4::text[], $5::text[]) AS u(k, t, r, n, s)`,
        [k, t, r, n, s],
      );
      await yieldToLoop();
    }
  }

  /** Once every record is staged: the index the row-order pages walk (on Postgres, cheaper built once than kept up). */
  async index(): Promise<void> {
    if (this.sql().kind === 'postgres') await this.createIndex();
  }

  private async createIndex(): Promise<void> {
    await this.sql().exec(
      `CREATE INDEX "${this.table}_order" ON "${this.table}" (entity_key, event_time, record)`,
    );
  }

  /**
   * The staged records in row order, `size` a page, as chunks of complete entity groups:
   * the last group of a page may go on in the next, so it is carried over (a chunk holds
   * a page plus at most the rest of one entity's records). Read on `tx` inside a
   * transaction, else on the store's handle.
   */
  async *chunks(tx: Sql | undefined, size: number, signal?: AbortSignal): AsyncIterable<StagedChunk> {
    const sql = tx ?? this.sql();
    let after: [string, number, string] | undefined;
    let carry: StagedRow[] = [];
    for (;;) {
      signal?.throwIfAborted();
      const { rows } = await sql.query<StagedRow>(
        `SELECT entity_key, event_time, record, numbers, strings FROM "${this.table}"
         ${after ? 'WHERE (entity_key, event_time, record) > ($2::text, $3::float8, $4::bigint)' : ''}
         ORDER BY entity_key, event_time, record LIMIT $1`,
        after ? [size, ...after] : [size],
      );
      const last = rows.length < size;
      const held = carry.length ? carry.concat(rows) : rows;
      let end = held.length;
      if (!last) {
        const key = (held[end - 1] as StagedRow).entity_key;
        while (end > 0 && (held[end - 1] as StagedRow).entity_key === key) end--;
      }
      carry = held.slice(end);
      if (end > 0) yield this.decode(held, end);
      if (last) return;
      const tail = rows[rows.length - 1] as StagedRow;
      after = [tail.entity_key, tail.event_time, tail.record];
      await yieldToLoop();
    }
  }

  private decode(rows: readonly StagedRow[], n: number): StagedChunk {
    const columns = new Map<string, number[] | (string | null)[]>();
    const numbers = this.numericFields.map((f) => {
      const column = new Array<number>(n);
      columns.set(f, column);
      return column;
    });
    const texts = this.textFields.map((f) => {
      const column = new Array<string | null>(n);
      columns.set(f, column);
      return column;
    });
    const records = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const row = rows[i] as StagedRow;
      const bytes = Buffer.from(row.numbers.buffer, row.numbers.byteOffset, row.numbers.byteLength);
      for (let j = 0; j < numbers.length; j++) (numbers[j] as number[])[i] = bytes.readDoubleLE(8 * j);
      const values = JSON.parse(row.strings) as (string | null)[];
      for (let j = 0; j < texts.length; j++) (texts[j] as (string | null)[])[i] = values[j] ?? null;
      records[i] = Number(row.record);
    }
    return { table: RecordTable.fromColumns(this.view.fields, n, columns), records };
  }

  /** Keeps each group's last row (latest event time, then ingest order) as its online vector. */
  async putLatest(sql: Sql, datasetVersion: string, rows: FeatureRows): Promise<void> {
    const width = rows.featureNames.length;
    const groups = rows.groupStarts.length - 1;
    const chunk = INSERT_CHUNK[sql.kind];
    for (let at = 0; at < groups; at += chunk) {
      const keys: string[] = [];
      const vectors: string[] = [];
      for (let g = at; g < Math.min(groups, at + chunk); g++) {
        const last = (rows.groupStarts[g + 1] as number) - 1;
        keys.push(rows.entityKeys[last] as string);
        const values = rows.values.subarray(last * width, (last + 1) * width);
        vectors.push(packVector(datasetVersion, rows.times[last] as number, values).toString('hex'));
      }
      await sql.query(
        `INSERT INTO "${this.table}_latest" (entity_key, vector)
         SELECT k, decode(v, 'hex') FROM unnest($1::text[], $2::text[]) AS u(k, v)`,
        [keys, vectors],
      );
    }
  }

  /** The latest vectors put, `size` entities a page. */
  async *latest(
    size: number,
    signal?: AbortSignal,
  ): AsyncIterable<{ entities: string[]; vectors: Buffer[] }> {
    let after: string | undefined;
    for (;;) {
      signal?.throwIfAborted();
      const { rows } = await this.sql().query<{ entity_key: string; vector: Uint8Array }>(
        `SELECT entity_key, vector FROM "${this.table}_latest" ${after === undefined ? '' : 'WHERE entity_key > $2::text'}
         ORDER BY entity_key LIMIT $1`,
        after === undefined ? [size] : [size, after],
      );
      if (rows.length > 0) {
        yield {
          entities: rows.map((r) => r.entity_key),
          vectors: rows.map((r) => Buffer.from(r.vector.buffer, r.vector.byteOffset, r.vector.byteLength)),
        };
      }
      if (rows.length < size) return;
      after = (rows[rows.length - 1] as { entity_key: string }).entity_key;
      await yieldToLoop();
    }
  }

  async drop(): Promise<void> {
    await this.sql().exec(
      `DROP TABLE IF EXISTS "${this.table}"; DROP TABLE IF EXISTS "${this.table}_latest";`,
    );
  }
}
