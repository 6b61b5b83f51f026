import type { Migration } from '@ballast/storage';

/**
 * The ingest service's schema, forward-only: append new migrations, never edit an applied
 * one (storage refuses a changed migration by its checksum).
 *
 * `records` is append-only: rows are inserted, never updated or deleted. Its key is the
 * event id (per dataset), which is what makes retries and overlapping sources idempotent;
 * `seq` orders arrivals, so a version is "every record with seq <= its watermark". Event
 * ids use the "C" collation so that their order (ReadVersion's) is the same on Postgres
 * and PGlite whatever their locale. `data` is `json`, which keeps the
 * canonical text the service wrote byte for byte.
 */
export const migrations: Migration[] = [
  {
    id: '0001_datasets_records_versions',
    sql: `
      CREATE TABLE datasets (
        id bigserial PRIMARY KEY,
        name text NOT NULL UNIQUE,
        description text NOT NULL DEFAULT '',
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE schemas (
        dataset_id bigint NOT NULL REFERENCES datasets (id),
        major integer NOT NULL,
        minor integer NOT NULL,
        definition json NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (dataset_id, major, minor)
      );
      CREATE TABLE records (
        dataset_id bigint NOT NULL,
        event_id text COLLATE "C" NOT NULL,
        seq bigserial NOT NULL,
        event_time timestamptz NOT NULL,
        source text NOT NULL,
        schema_major integer NOT NULL,
        schema_minor integer NOT NULL,
        data json NOT NULL,
        PRIMARY KEY (dataset_id, event_id)
      );
      CREATE TABLE quarantine (
        id bigserial PRIMARY KEY,
        dataset_id bigint NOT NULL REFERENCES datasets (id),
        digest text NOT NULL,
        event_id text NOT NULL,
        source text NOT NULL,
        fields jsonb NOT NULL,
        record bytea NOT NULL,
        violations jsonb NOT NULL,
        schema_major integer NOT NULL,
        schema_minor integer NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        resolved_at timestamptz,
        resolution text,
        UNIQUE (dataset_id, digest)
      );
      CREATE INDEX quarantine_pending ON quarantine (dataset_id, id) WHERE resolved_at IS NULL;
      CREATE TABLE versions (
        dataset_id bigint NOT NULL REFERENCES datasets (id),
        number integer NOT NULL,
        id text NOT NULL,
        record_watermark bigint NOT NULL,
        quarantine_watermark bigint NOT NULL,
        record_count bigint NOT NULL,
        summary json NOT NULL,
        stats json NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (dataset_id, number),
        UNIQUE (dataset_id, id)
      );
    `,
  },
  {
    // The traceparent of the CommitVersion call that created a version (DatasetVersion.
    // commit_traceparent): a training job on the version links its trace to the commit's.
    id: '0002_version_commit_traceparent',
    sql: `ALTER TABLE versions ADD COLUMN commit_traceparent text NOT NULL DEFAULT '';`,
  },
  {
    // A running count of each dataset's records, kept in the transaction that inserts them:
    // count(*) over a million records holds PGlite's thread (the service's own) for ~0.5 s,
    // and GetDataset and every commit's records_total needed it. Backfilled once here.
    id: '0003_record_counts',
    sql: `
      CREATE TABLE record_counts (
        dataset_id bigint PRIMARY KEY REFERENCES datasets (id),
        records bigint NOT NULL DEFAULT 0
      );
      INSERT INTO record_counts (dataset_id, records)
        SELECT d.id, (SELECT count(*) FROM records r WHERE r.dataset_id = d.id) FROM datasets d;
    `,
  },
  {
    // The outbox of version announcements (features.materialize jobs): a row is written in
    // the transaction that inserts the version and deleted once the job is in the queue, so
    // a process killed between the database commit and the enqueue leaves the row, and the
    // next start enqueues it (the job id is deterministic: at most one job per version).
    // Versions committed before this migration were announced when they were committed.
    id: '0004_version_announcements',
    sql: `
      CREATE TABLE version_announcements (
        dataset_id bigint NOT NULL REFERENCES datasets (id),
        version_id text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (dataset_id, version_id)
      );
    `,
  },
  {
    // A dataset's records in arrival order, which is the order the table stores them in: a
    // commit reads them this way (every table page once, in order) and puts them in version
    // order itself (hash-order-sort.ts), instead of walking the primary key, whose order is
    // unrelated to storage and cost a random page read per record once the table outgrew
    // the buffer cache. seq only grows, so inserts land at the index's right edge.
    id: '0005_records_arrival_index',
    sql: 'CREATE INDEX records_arrival ON records (dataset_id, seq);',
  },
];
