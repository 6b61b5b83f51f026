import { BallastError } from '@ballast/grpc-kit';
import { isUniqueViolation, type Sql, sqlState } from '@ballast/storage';
import type { SchemaDef, StoredSchema } from './schema.js';

/**
 * Persistence for ingest, over Postgres or PGlite (the same SQL on both).
 *
 * Batches and commits meet on an advisory lock per dataset: each batch's transaction holds
 * it shared, a commit takes it exclusive for an instant to read the sequence watermarks.
 * Every record numbered below the watermark then belongs to a transaction that has ended,
 * and every later one is numbered above it, so "seq <= watermark" is exactly what was
 * acknowledged before the commit, and stays so.
 */
const LOCK_CLASS = 4051;
const COMMIT_LOCK_CLASS = 4052;

export interface DatasetRow {
  id: string;
  name: string;
  description: string;
  createdAt: Date;
}

export interface QuarantineInsert {
  digest: string;
  eventId: string;
  fields: string[];
  /** Base64 of the ballast.ingest.v1.Record as received. */
  record: string;
  violations: { row: number; field: string; rule: string; message: string }[];
}

export interface QuarantineRow {
  id: string;
  eventId: string;
  source: string;
  fields: string[];
  record: Buffer;
  violations: { row: number; field: string; rule: string; message: string }[];
  schemaMajor: number;
  schemaMinor: number;
  receivedAt: Date;
}

export interface RecordRow {
  eventId: string;
  seq: string;
  source: string;
  data: string;
}

export interface VersionRow {
  number: number;
  id: string;
  recordWatermark: string;
  quarantineWatermark: string;
  recordCount: string;
  summary: unknown;
  stats: unknown;
  createdAt: Date;
  /** The W3C traceparent of the commit call that created the version; '' when untraced. */
  commitTraceparent: string;
}

interface RawSchema {
  major: number;
  minor: number;
  definition: SchemaDef;
  created_at: Date;
}

const RETRYABLE = new Set(['40P01', '40001']); // deadlock, serialization failure

async function withRetry<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const state = sqlState(err);
      if (attempt >= 5 || state === undefined || !RETRYABLE.has(state)) throw err;
    }
  }
}

export class IngestStore {
  constructor(private readonly db: () => Sql) {}

  private get sql(): Sql {
    return this.db();
  }

  get kind(): Sql['kind'] {
    return this.sql.kind;
  }

  async createDataset(name: string, description: string, schema: SchemaDef): Promise<DatasetRow> {
    try {
      return await this.sql.transaction(async (tx) => {
        const { rows } = await tx.query<{ id: string; created_at: Date }>(
          'INSERT INTO datasets (name, description) VALUES ($1, $2) RETURNING id, created_at',
          [name, description],
        );
        const row = rows[0] as { id: string; created_at: Date };
        await tx.query('INSERT INTO schemas (dataset_id, major, minor, definition) VALUES ($1, 1, 0, $2)', [
          row.id,
          JSON.stringify(schema),
        ]);
        await tx.query('INSERT INTO record_counts (dataset_id) VALUES ($1)', [row.id]);
        return { id: row.id, name, description, createdAt: row.created_at };
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw new BallastError('already_exists', `dataset ${name} already exists`);
      throw err;
    }
  }

  async dataset(name: string): Promise<DatasetRow | undefined> {
    const { rows } = await this.sql.query<{
      id: string;
      name: string;
      description: string;
      created_at: Date;
    }>('SELECT id, name, description, created_at FROM datasets WHERE name = $1', [name]);
    const row = rows[0];
    return row && { id: row.id, name: row.name, description: row.description, createdAt: row.created_at };
  }

  async datasets(): Promise<DatasetRow[]> {
    const { rows } = await this.sql.query<{
      id: string;
      name: string;
      description: string;
      created_at: Date;
    }>('SELECT id, name, description, created_at FROM datasets ORDER BY name');
    return rows.map((r) => ({ id: r.id, name: r.name, description: r.description, createdAt: r.created_at }));
  }

  async currentSchema(datasetId: string, db: Sql = this.sql): Promise<StoredSchema> {
    const { rows } = await db.query<RawSchema>(
      `SELECT major, minor, definition, created_at FROM schemas WHERE dataset_id = $1
       ORDER BY major DESC, minor DESC LIMIT 1`,
      [datasetId],
    );
    const row = rows[0];
    if (!row) throw new Error(`dataset ${datasetId} has no schema`);
    return { ...row.definition, major: row.major, minor: row.minor, createdAt: row.created_at };
  }

  async schemaVersion(datasetId: string, major: number, minor: number): Promise<StoredSchema> {
    const { rows } = await this.sql.query<RawSchema>(
      'SELECT major, minor, definition, created_at FROM schemas WHERE dataset_id = $1 AND major = $2 AND minor = $3',
      [datasetId, major, minor],
    );
    const row = rows[0];
    if (!row) throw new Error(`dataset ${datasetId} has no schema ${major}.${minor}`);
    return { ...row.definition, major: row.major, minor: row.minor, createdAt: row.created_at };
  }

  /**
   * Stores `next` as the dataset's next schema version, computed from the current one under
   * the dataset's commit lock (so two writers cannot both take the same version).
   */
  async putSchema(
    datasetId: string,
    decide: (current: StoredSchema) => { major: number; minor: number } | undefined,
    next: SchemaDef,
  ): Promise<{ schema: StoredSchema; created: boolean; previous: StoredSchema }> {
    return this.sql.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1, $2::int)', [COMMIT_LOCK_CLASS, datasetId]);
      const current = await this.currentSchema(datasetId, tx);
      const version = decide(current);
      if (!version) return { schema: current, created: false, previous: current };
      const { rows } = await tx.query<{ created_at: Date }>(
        'INSERT INTO schemas (dataset_id, major, minor, definition) VALUES ($1, $2, $3, $4) RETURNING created_at',
        [datasetId, version.major, version.minor, JSON.stringify(next)],
      );
      const createdAt = (rows[0] as { created_at: Date }).created_at;
      return { schema: { ...next, ...version, createdAt }, created: true, previous: current };
    });
  }

  async counts(datasetId: string): Promise<{ records: string; quarantined: string }> {
    const { rows } = await this.sql.query<{ records: string; quarantined: string }>(
      `SELECT (SELECT records FROM record_counts WHERE dataset_id = $1) AS records,
              (SELECT count(*) FROM quarantine WHERE dataset_id = $1 AND resolved_at IS NULL) AS quarantined`,
      [datasetId],
    );
    return rows[0] as { records: string; quarantined: string };
  }

  /**
   * Appends one batch in one transaction: the valid rows (duplicates by event id skipped,
   * in event-id order so that concurrent overlapping batches lock keys in the same order)
   * and the quarantined ones. Returns how many records were new. Resolves only once the
   * transaction has committed, i.e. once the batch is durable.
   */
  async appendBatch(
    datasetId: string,
    schema: { major: number; minor: number },
    source: string,
    rowsJson: string,
    validCount: number,
    quarantine: QuarantineInsert[],
  ): Promise<number> {
    if (validCount === 0 && quarantine.length === 0) return 0;
    return withRetry(() =>
      this.sql.transaction(async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock_shared($1, $2::int)', [LOCK_CLASS, datasetId]);
        let inserted = 0;
        if (validCount > 0) {
          const result = await tx.query(
            `INSERT INTO records (dataset_id, event_id, event_time, source, schema_major, schema_minor, data)
             SELECT $1, r.i, r.t, $3, $4, $5, r.d
             FROM json_to_recordset($2::json) AS r(i text, t timestamptz, d json)
             ORDER BY r.i COLLATE "C"
             ON CONFLICT (dataset_id, event_id) DO NOTHING`,
            [datasetId, rowsJson, source, schema.major, schema.minor],
          );
          inserted = result.rowCount;
        }
        if (quarantine.length > 0) await this.insertQuarantine(tx, datasetId, schema, source, quarantine);
        await addToRecordCount(tx, datasetId, inserted);
        return inserted;
      }),
    );
  }

  private async insertQuarantine(
    tx: Sql,
    datasetId: string,
    schema: { major: number; minor: number },
    source: string,
    rows: QuarantineInsert[],
  ): Promise<void> {
    await tx.query(
      `INSERT INTO quarantine (dataset_id, digest, event_id, source, fields, record, violations, schema_major, schema_minor)
       SELECT $1, q.digest, q.event_id, $3, q.fields, decode(q.record, 'base64'), q.violations, $4, $5
       FROM json_to_recordset($2::json) AS q(digest text, event_id text, fields jsonb, record text, violations jsonb)
       ON CONFLICT (dataset_id, digest) DO NOTHING`,
      [
        datasetId,
        JSON.stringify(
          rows.map((r) => ({
            digest: r.digest,
            event_id: r.eventId,
            fields: r.fields,
            record: r.record,
            violations: r.violations,
          })),
        ),
        source,
        schema.major,
        schema.minor,
      ],
    );
  }

  async quarantinePage(
    datasetId: string,
    afterId: string,
    limit: number,
    ids?: string[],
  ): Promise<QuarantineRow[]> {
    const { rows } = await this.sql.query<{
      id: string;
      event_id: string;
      source: string;
      fields: string[];
      record: Buffer;
      violations: QuarantineRow['violations'];
      schema_major: number;
      schema_minor: number;
      received_at: Date;
    }>(
      `SELECT id, event_id, source, fields, record, violations, schema_major, schema_minor, received_at
       FROM quarantine
       WHERE dataset_id = $1 AND resolved_at IS NULL AND id > $2 ${ids ? 'AND id = ANY($4::bigint[])' : ''}
       ORDER BY id LIMIT $3`,
      ids ? [datasetId, afterId, limit, ids] : [datasetId, afterId, limit],
    );
    return rows.map((r) => ({
      id: r.id,
      eventId: r.event_id,
      source: r.source,
      fields: r.fields,
      record: r.record,
      violations: r.violations,
      schemaMajor: r.schema_major,
      schemaMinor: r.schema_minor,
      receivedAt: r.received_at,
    }));
  }

  /**
   * Appends replayed records that now pass and marks them resolved, in one transaction:
   * a replay cut short leaves each record either quarantined or appended, never both.
   */
  async resolveReplayed(
    datasetId: string,
    schema: { major: number; minor: number },
    replayed: { id: string; source: string; rowsJson: string }[],
  ): Promise<number> {
    if (replayed.length === 0) return 0;
    return withRetry(() =>
      this.sql.transaction(async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock_shared($1, $2::int)', [LOCK_CLASS, datasetId]);
        let inserted = 0;
        for (const r of replayed) {
          const result = await tx.query(
            `INSERT INTO records (dataset_id, event_id, event_time, source, schema_major, schema_minor, data)
             SELECT $1, r.i, r.t, $3, $4, $5, r.d
             FROM json_to_recordset($2::json) AS r(i text, t timestamptz, d json)
             ON CONFLICT (dataset_id, event_id) DO NOTHING`,
            [datasetId, r.rowsJson, r.source, schema.major, schema.minor],
          );
          inserted += result.rowCount;
          await tx.query(
            `UPDATE quarantine SET resolved_at = now(), resolution = $3
             WHERE dataset_id = $1 AND id = $2 AND resolved_at IS NULL`,
            [datasetId, r.id, result.rowCount > 0 ? 'accepted' : 'duplicate'],
          );
        }
        await addToRecordCount(tx, datasetId, inserted);
        return inserted;
      }),
    );
  }

  /**
   * The watermarks a version seals (see the class comment) and how many records that is.
   * Under the exclusive lock no batch is in flight, so the running count is exactly the
   * records numbered at or below the record watermark.
   */
  async watermarks(datasetId: string): Promise<{ records: string; quarantine: string; recordCount: number }> {
    return this.sql.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1, $2::int)', [LOCK_CLASS, datasetId]);
      const { rows } = await tx.query<{ records: string; quarantine: string; record_count: string }>(
        `SELECT (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM records_seq_seq) AS records,
                (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM quarantine_id_seq) AS quarantine,
                (SELECT records FROM record_counts WHERE dataset_id = $1) AS record_count`,
        [datasetId],
      );
      const row = rows[0] as { records: string; quarantine: string; record_count: string };
      return { records: row.records, quarantine: row.quarantine, recordCount: Number(row.record_count ?? 0) };
    });
  }

  /**
   * One page of a version's records in event-id order ("C" collation), after `afterEventId`.
   *
   * The plan is pinned to a walk of the primary key: without fresh statistics (PGlite never
   * analyzes; Postgres not right after a bulk load) the planner took a bitmap scan of every
   * record after `afterEventId` and a sort, so each page cost the rest of the table and a
   * commit grew with the square of its records.
   */
  async recordPage(datasetId: string, watermark: string, afterEventId: string | undefined, limit: number) {
    const { rows } = await this.sql.transaction(async (tx) => {
      await tx.exec(
        'SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off',
      );
      return tx.query<{ event_id: string; seq: string; source: string; data: string }>(
        `SELECT event_id, seq, source, data::text AS data FROM records
         WHERE dataset_id = $1 AND seq <= $2 ${afterEventId === undefined ? '' : 'AND event_id > $4'}
         ORDER BY event_id LIMIT $3`,
        afterEventId === undefined
          ? [datasetId, watermark, limit]
          : [datasetId, watermark, limit, afterEventId],
      );
    });
    return rows.map((r): RecordRow => ({ eventId: r.event_id, seq: r.seq, source: r.source, data: r.data }));
  }

  /**
   * One page of the records sealed by `watermark`, in arrival (seq) order after `afterSeq`:
   * the order the table stores them, so a commit's scan reads each table page once. The plan
   * is pinned to the arrival index for the same reason as recordPage's.
   */
  async arrivalPage(datasetId: string, watermark: string, afterSeq: string, limit: number) {
    const { rows } = await this.sql.transaction(async (tx) => {
      await tx.exec(
        'SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off',
      );
      return tx.query<{ event_id: string; seq: string; source: string; data: string }>(
        `SELECT event_id, seq, source, data::text AS data FROM records
         WHERE dataset_id = $1 AND seq > $2 AND seq <= $3
         ORDER BY seq LIMIT $4`,
        [datasetId, afterSeq, watermark, limit],
      );
    });
    return rows.map((r): RecordRow => ({ eventId: r.event_id, seq: r.seq, source: r.source, data: r.data }));
  }

  /** Violations quarantined between two quarantine watermarks (for a version's quality report). */
  async quarantinedBetween(datasetId: string, after: string, upTo: string) {
    const { rows } = await this.sql.query<{ violations: QuarantineRow['violations'] }>(
      'SELECT violations FROM quarantine WHERE dataset_id = $1 AND id > $2 AND id <= $3',
      [datasetId, after, upTo],
    );
    return rows.map((r) => r.violations);
  }

  async latestVersion(datasetId: string): Promise<VersionRow | undefined> {
    return this.versionWhere(datasetId, 'ORDER BY number DESC LIMIT 1', []);
  }

  async version(datasetId: string, id: string): Promise<VersionRow | undefined> {
    return this.versionWhere(datasetId, 'AND id = $2', [id]);
  }

  private async versionWhere(datasetId: string, clause: string, params: unknown[]) {
    const { rows } = await this.sql.query<{
      number: number;
      id: string;
      record_watermark: string;
      quarantine_watermark: string;
      record_count: string;
      summary: unknown;
      stats: unknown;
      created_at: Date;
      commit_traceparent: string;
    }>(
      `SELECT number, id, record_watermark, quarantine_watermark, record_count, summary, stats, created_at,
              commit_traceparent
       FROM versions WHERE dataset_id = $1 ${clause}`,
      [datasetId, ...params],
    );
    const r = rows[0];
    return (
      r && {
        number: r.number,
        id: r.id,
        recordWatermark: r.record_watermark,
        quarantineWatermark: r.quarantine_watermark,
        recordCount: r.record_count,
        summary: r.summary,
        stats: r.stats,
        createdAt: r.created_at,
        commitTraceparent: r.commit_traceparent,
      }
    );
  }

  /**
   * Inserts a version after `previousNumber` (0 for the first). Returns undefined when the
   * dataset's latest version is no longer `previousNumber` (a concurrent commit won): the
   * caller recomputes against the new one.
   */
  async insertVersion(
    datasetId: string,
    previousNumber: number,
    v: {
      id: string;
      recordWatermark: string;
      quarantineWatermark: string;
      recordCount: number;
      commitTraceparent: string;
    },
    summary: (number: number, createdAt: Date) => unknown,
    stats: unknown,
  ): Promise<VersionRow | undefined> {
    return this.sql.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1, $2::int)', [COMMIT_LOCK_CLASS, datasetId]);
      const { rows } = await tx.query<{ number: number | null }>(
        'SELECT max(number) AS number FROM versions WHERE dataset_id = $1',
        [datasetId],
      );
      if ((rows[0]?.number ?? 0) !== previousNumber) return undefined;
      const number = previousNumber + 1;
      const createdAt = new Date();
      const body = summary(number, createdAt);
      await tx.query(
        `INSERT INTO versions (dataset_id, number, id, record_watermark, quarantine_watermark, record_count, summary, stats, created_at, commit_traceparent)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
        [
          datasetId,
          number,
          v.id,
          v.recordWatermark,
          v.quarantineWatermark,
          v.recordCount,
          JSON.stringify(body),
          JSON.stringify(stats),
          createdAt,
          v.commitTraceparent,
        ],
      );
      // In the same transaction: the version and its pending announcement exist together.
      await tx.query('INSERT INTO version_announcements (dataset_id, version_id) VALUES ($1, $2)', [
        datasetId,
        v.id,
      ]);
      return {
        number,
        id: v.id,
        recordWatermark: v.recordWatermark,
        quarantineWatermark: v.quarantineWatermark,
        recordCount: String(v.recordCount),
        summary: body,
        stats,
        createdAt,
        commitTraceparent: v.commitTraceparent,
      };
    });
  }

  /** Versions whose features.materialize job may not be queued yet (the outbox), oldest first. */
  async pendingAnnouncements(
    limit: number,
  ): Promise<Array<{ datasetId: string; dataset: string; version: string }>> {
    const { rows } = await this.sql.query<{ dataset_id: string; name: string; version_id: string }>(
      `SELECT a.dataset_id, d.name, a.version_id FROM version_announcements a
         JOIN datasets d ON d.id = a.dataset_id
        ORDER BY a.created_at, a.dataset_id, a.version_id LIMIT $1`,
      [limit],
    );
    return rows.map((r) => ({ datasetId: String(r.dataset_id), dataset: r.name, version: r.version_id }));
  }

  /** The version's job is in the queue: its outbox row goes. */
  async announced(datasetId: string, version: string): Promise<void> {
    await this.sql.query('DELETE FROM version_announcements WHERE dataset_id = $1 AND version_id = $2', [
      datasetId,
      version,
    ]);
  }
}

/**
 * Keeps the dataset's running record count in the inserting transaction, last, so that
 * concurrent batches of one dataset wait on its row only for their commit's instant.
 */
export async function addToRecordCount(tx: Sql, datasetId: string, inserted: number): Promise<void> {
  if (inserted > 0)
    await tx.query('UPDATE record_counts SET records = records + $2 WHERE dataset_id = $1', [
      datasetId,
      inserted,
    ]);
}
