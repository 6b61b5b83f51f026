import {
  type FeatureViewDefinition,
  FeatureViewDefinitionSchema,
} from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import type { Sql } from '@ballast/storage';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import type { CompiledView } from './definition.js';
import { yieldToLoop } from './event-loop.js';
import { Stage } from './stage.js';
import type { FeatureRows, Fit } from './transforms.js';

/**
 * The offline store (schema `feature`): view definitions by version, materializations, and
 * feature rows per (view version, dataset version). A materialization replaces its rows
 * under a lock, in one transaction, so a re-run yields the same rows and a failed one
 * leaves the previous rows in place.
 */

export interface StoredView {
  definition: FeatureViewDefinition;
  version: string;
  createdAt: Date;
}

export interface Materialization {
  records: number;
  rows: number;
  entities: number;
  skipped: number;
  minEventTime: number | null;
  maxEventTime: number | null;
  fit: Fit;
  /** When its rows were written, to the microsecond: tells this materialization from a later one. */
  generation: string;
}

/** What a materialization records beside its rows (the row count and time range are counted as inserted). */
export interface RowsSummary {
  records: number;
  entities: number;
  skipped: number;
  fit: Fit;
}

export interface StoredRow {
  eventTime: number;
  entityKey: string;
  segment: string;
  label: number;
  features: Float64Array;
}

export interface RowQuery {
  viewVersion: string;
  datasetVersion: string;
  start: number;
  end: number;
  /** Rows whose label is null are left out. */
  labelledOnly: boolean;
}

/**
 * Rows per offline insert. PGlite runs each statement on the service's own thread, so its
 * statements stay small enough to leave the event loop free within tens of milliseconds
 * (5,000 rows took seconds on a loaded machine). On Postgres a statement's cost on this
 * thread is building and serializing its arrays (node-postgres escapes each element): up to
 * ~34 ms at 5,000 rows on a quiet machine.
 */
const INSERT_CHUNK = { pglite: 500, postgres: 1_000 } as const;

function toFloats(bytes: Uint8Array): Float64Array {
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new Float64Array(copy.buffer);
}

const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));

export class FeatureStore {
  constructor(private readonly sql: () => Sql) {}

  get kind(): Sql['kind'] {
    return this.sql().kind;
  }

  /** Stores a view version; false when that exact version was already applied. */
  async applyView(view: CompiledView): Promise<{ created: boolean; createdAt: Date }> {
    const inserted = await this.sql().query<{ created_at: Date }>(
      `INSERT INTO views (name, version, dataset, definition) VALUES ($1, $2, $3, $4)
       ON CONFLICT (name, version) DO NOTHING RETURNING created_at`,
      [
        view.name,
        view.version,
        view.dataset,
        Buffer.from(toBinary(FeatureViewDefinitionSchema, view.definition)),
      ],
    );
    if (inserted.rows[0]) return { created: true, createdAt: inserted.rows[0].created_at };
    const existing = await this.getView(view.name, view.version);
    return { created: false, createdAt: existing?.createdAt ?? new Date() };
  }

  /** A version of a view, or its latest version when `version` is empty. */
  async getView(name: string, version: string): Promise<StoredView | undefined> {
    const { rows } = await this.sql().query<{ version: string; definition: Uint8Array; created_at: Date }>(
      version
        ? 'SELECT version, definition, created_at FROM views WHERE name = $1 AND version = $2'
        : 'SELECT version, definition, created_at FROM views WHERE name = $1 ORDER BY seq DESC LIMIT 1',
      version ? [name, version] : [name],
    );
    const row = rows[0];
    if (!row) return undefined;
    return {
      version: row.version,
      definition: fromBinary(FeatureViewDefinitionSchema, row.definition),
      createdAt: row.created_at,
    };
  }

  /** The latest version of every view that reads `dataset`. */
  async latestViewsOf(dataset: string): Promise<StoredView[]> {
    const { rows } = await this.sql().query<{ version: string; definition: Uint8Array; created_at: Date }>(
      `SELECT DISTINCT ON (name) version, definition, created_at FROM views
       WHERE dataset = $1 ORDER BY name, seq DESC`,
      [dataset],
    );
    return rows.map((row) => ({
      version: row.version,
      definition: fromBinary(FeatureViewDefinitionSchema, row.definition),
      createdAt: row.created_at,
    }));
  }

  /** Replaces the rows of (view version, dataset version) with `rows`. */
  async writeRows(
    view: CompiledView,
    datasetVersion: string,
    rows: FeatureRows,
    summary: { records: number; entities: number },
  ): Promise<void> {
    await this.replaceRows(view, datasetVersion, async (_tx, insert) => {
      await insert(rows);
      return { ...summary, skipped: rows.skipped, fit: rows.fit };
    });
  }

  /**
   * Replaces the rows of (view version, dataset version) with those `fill` inserts, part by
   * part, and records the materialization, all in one transaction: a failure anywhere leaves
   * the previous rows in place. `fill` runs its own reads on `tx` (on PGlite, the only
   * connection, held for the whole transaction).
   */
  async replaceRows(
    view: CompiledView,
    datasetVersion: string,
    fill: (tx: Sql, insert: (rows: FeatureRows) => Promise<void>) => Promise<RowsSummary>,
  ): Promise<void> {
    const chunk = INSERT_CHUNK[this.sql().kind];
    await this.sql().transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`${view.version}/${datasetVersion}`]);
      await tx.query('DELETE FROM rows WHERE view_version = $1 AND dataset_version = $2', [
        view.version,
        datasetVersion,
      ]);
      await tx.query('DELETE FROM feature_statistics WHERE view_version = $1 AND dataset_version = $2', [
        view.version,
        datasetVersion,
      ]);
      let count = 0;
      let min = Number.POSITIVE_INFINITY;
      let max = Number.NEGATIVE_INFINITY;
      const insert = async (rows: FeatureRows) => {
        await insertRows(tx, view.version, datasetVersion, rows, chunk);
        for (let i = 0; i < rows.count; i++) {
          const t = rows.times[i] as number;
          if (t < min) min = t;
          if (t > max) max = t;
        }
        count += rows.count;
      };
      const summary = await fill(tx, insert);
      await tx.query(
        `INSERT INTO materializations
           (view_version, dataset_version, records, row_count, entities, skipped, min_event_time, max_event_time, fit)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (view_version, dataset_version) DO UPDATE SET
           records = excluded.records, row_count = excluded.row_count, entities = excluded.entities,
           skipped = excluded.skipped, min_event_time = excluded.min_event_time,
           max_event_time = excluded.max_event_time, fit = excluded.fit, materialized_at = now()`,
        [
          view.version,
          datasetVersion,
          summary.records,
          count,
          summary.entities,
          summary.skipped,
          count ? min : null,
          count ? max : null,
          JSON.stringify(summary.fit),
        ],
      );
    });
  }

  /** A staging area for one streaming materialization of `view` (stage.ts). */
  stage(view: CompiledView): Promise<Stage> {
    return Stage.create(this.sql, view);
  }

  async materialization(viewVersion: string, datasetVersion: string): Promise<Materialization | undefined> {
    const { rows } = await this.sql().query<Record<string, unknown>>(
      `SELECT *, materialized_at::text AS generation FROM materializations
       WHERE view_version = $1 AND dataset_version = $2`,
      [viewVersion, datasetVersion],
    );
    const row = rows[0];
    if (!row) return undefined;
    return {
      records: Number(row.records),
      rows: Number(row.row_count),
      entities: Number(row.entities),
      skipped: Number(row.skipped),
      minEventTime: num(row.min_event_time),
      maxEventTime: num(row.max_event_time),
      fit: row.fit as Fit,
      generation: String(row.generation),
    };
  }

  /** A kept GetFeatureStatistics answer (its encoded response) for `request`, if there is one. */
  async keptStatistics(
    viewVersion: string,
    datasetVersion: string,
    request: string,
  ): Promise<Uint8Array | undefined> {
    const { rows } = await this.sql().query<{ response: Uint8Array }>(
      `SELECT response FROM feature_statistics
       WHERE view_version = $1 AND dataset_version = $2 AND request = $3`,
      [viewVersion, datasetVersion, request],
    );
    return rows[0]?.response;
  }

  /**
   * Keeps an answer computed over the rows of materialization `generation`, unless the version
   * has been materialized again since (its answer would describe rows that are gone).
   */
  async keepStatistics(
    viewVersion: string,
    datasetVersion: string,
    generation: string,
    request: string,
    response: Uint8Array,
  ): Promise<void> {
    await this.sql().query(
      `INSERT INTO feature_statistics (view_version, dataset_version, request, response)
       SELECT $1, $2, $4, $5 WHERE EXISTS (
         SELECT 1 FROM materializations
         WHERE view_version = $1 AND dataset_version = $2 AND materialized_at::text = $3)
       ON CONFLICT (view_version, dataset_version, request) DO NOTHING`,
      [
        viewVersion,
        datasetVersion,
        generation,
        request,
        Buffer.from(response.buffer, response.byteOffset, response.byteLength),
      ],
    );
  }

  async countRows(query: RowQuery): Promise<number> {
    const { rows } = await this.sql().query<{ n: string }>(
      `SELECT count(*) AS n FROM rows WHERE view_version = $1 AND dataset_version = $2
       AND event_time >= $3 AND event_time < $4 ${query.labelledOnly ? 'AND label IS NOT NULL' : ''}`,
      [query.viewVersion, query.datasetVersion, bound(query.start), bound(query.end)],
    );
    return Number(rows[0]?.n ?? 0);
  }

  /** Rows ordered by event time, entity key, then ingest order, `batchSize` at a time (keyset pages). */
  async *readRows(query: RowQuery, batchSize: number): AsyncIterable<StoredRow[]> {
    let after: [number, string, number] | undefined;
    for (;;) {
      const params: unknown[] = [
        query.viewVersion,
        query.datasetVersion,
        bound(query.start),
        bound(query.end),
        batchSize,
      ];
      let keyset = '';
      if (after) {
        params.push(after[0], after[1], after[2]);
        keyset = 'AND (event_time, entity_key, record) > ($6, $7, $8)';
      }
      const { rows } = await this.sql().query<{
        event_time: string;
        entity_key: string;
        record: string;
        segment: string;
        label: number | null;
        features: Uint8Array;
      }>(
        `SELECT event_time, entity_key, record, segment, label, features FROM rows
         WHERE view_version = $1 AND dataset_version = $2 AND event_time >= $3 AND event_time < $4
         ${query.labelledOnly ? 'AND label IS NOT NULL' : ''} ${keyset}
         ORDER BY event_time, entity_key, record LIMIT $5`,
        params,
      );
      if (rows.length === 0) return;
      yield rows.map((row) => ({
        eventTime: Number(row.event_time),
        entityKey: row.entity_key,
        segment: row.segment,
        label: row.label === null ? Number.NaN : Number(row.label),
        features: toFloats(row.features),
      }));
      const last = rows[rows.length - 1] as { event_time: string; entity_key: string; record: string };
      after = [Number(last.event_time), last.entity_key, Number(last.record)];
      if (rows.length < batchSize) return;
    }
  }
}

async function insertRows(
  tx: Sql,
  viewVersion: string,
  datasetVersion: string,
  rows: FeatureRows,
  chunk: number,
): Promise<void> {
  const width = rows.featureNames.length;
  for (let at = 0; at < rows.count; at += chunk) {
    // PGlite runs each statement on this thread and its promises settle as microtasks,
    // so without this the whole write (a million rows: minutes) holds the event loop.
    await yieldToLoop();
    const end = Math.min(rows.count, at + chunk);
    const times: number[] = [];
    const records: number[] = [];
    const keys: string[] = [];
    const segments: string[] = [];
    const labels: (number | null)[] = [];
    const features: string[] = [];
    for (let i = at; i < end; i++) {
      times.push(rows.times[i] as number);
      records.push(rows.records[i] as number);
      keys.push(rows.entityKeys[i] as string);
      segments.push(rows.segments[i] as string);
      const label = rows.labels[i] as number;
      labels.push(Number.isNaN(label) ? null : label);
      const slice = rows.values.slice(i * width, (i + 1) * width);
      features.push(Buffer.from(slice.buffer).toString('hex'));
    }
    await tx.query(
      `INSERT INTO rows (view_version, dataset_version, event_time, entity_key, record, segment, label, features)
       SELECT $1, $2, t, k, r, s, l, decode(f, 'hex')
       FROM unnest($3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::float8[], $8::text[])
         AS u(t, k, r, s, l, f)`,
      [viewVersion, datasetVersion, times, keys, records, segments, labels, features],
    );
  }
}

/** Infinite range ends as the bigint extremes Postgres compares against. */
function bound(ms: number): string {
  if (ms === Number.NEGATIVE_INFINITY) return '-9223372036854775808';
  if (ms === Number.POSITIVE_INFINITY) return '9223372036854775807';
  return String(Math.floor(ms));
}
