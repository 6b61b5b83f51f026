import type { Migration } from '@ballast/storage';

/**
 * The feature service's schema, forward-only: append new migrations, never edit an applied
 * one (storage refuses a changed migration by its checksum).
 */
export const migrations: Migration[] = [
  {
    id: '0001_views_rows',
    sql: `
      CREATE TABLE views (
        name text NOT NULL,
        version text NOT NULL,
        seq bigint GENERATED ALWAYS AS IDENTITY,
        dataset text NOT NULL,
        definition bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (name, version)
      );
      CREATE UNIQUE INDEX views_version ON views (version);
      CREATE INDEX views_dataset ON views (dataset, name, seq);

      CREATE TABLE materializations (
        view_version text NOT NULL,
        dataset_version text NOT NULL,
        records bigint NOT NULL,
        row_count bigint NOT NULL,
        entities bigint NOT NULL,
        skipped bigint NOT NULL,
        min_event_time bigint,
        max_event_time bigint,
        fit jsonb NOT NULL,
        materialized_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (view_version, dataset_version)
      );

      -- One row per (view version, dataset version, entity, event time). features holds the
      -- row's values as little-endian float64s, NaN for null.
      CREATE TABLE rows (
        view_version text NOT NULL,
        dataset_version text NOT NULL,
        event_time bigint NOT NULL,
        entity_key text NOT NULL,
        segment text NOT NULL,
        label double precision,
        features bytea NOT NULL,
        PRIMARY KEY (view_version, dataset_version, event_time, entity_key)
      );
    `,
  },
  {
    // Two events of one entity at the same time are two rows: the record's position in the
    // dataset version (ingest order) joins the key. Rows written before keep 0, which was
    // unique for them.
    id: '0002_rows_record',
    sql: `
      ALTER TABLE rows ADD COLUMN record bigint NOT NULL DEFAULT 0;
      ALTER TABLE rows DROP CONSTRAINT rows_pkey;
      ALTER TABLE rows ADD PRIMARY KEY (view_version, dataset_version, event_time, entity_key, record);
    `,
  },
  {
    // The latest run per (view version, dataset version), so that a background job that
    // failed every attempt says so through the API, with its reason.
    id: '0003_materialization_runs',
    sql: `
      CREATE TABLE materialization_runs (
        view_name text NOT NULL,
        view_version text NOT NULL,
        dataset_version text NOT NULL,
        state text NOT NULL CHECK (state IN ('running', 'succeeded', 'failed')),
        reason text NOT NULL DEFAULT '',
        attempts integer NOT NULL,
        trigger text NOT NULL,
        records bigint NOT NULL DEFAULT 0,
        row_count bigint NOT NULL DEFAULT 0,
        entities bigint NOT NULL DEFAULT 0,
        skipped bigint NOT NULL DEFAULT 0,
        started_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        PRIMARY KEY (view_version, dataset_version)
      );
      CREATE INDEX materialization_runs_started ON materialization_runs (started_at DESC);
    `,
  },
  {
    // GetFeatureStatistics' answers, kept per request (bins, time range) until the version is
    // materialized again: over millions of rows an answer takes minutes to compute, which no
    // unary call should wait for more than once (version-statistics.ts).
    id: '0004_feature_statistics',
    sql: `
      CREATE TABLE feature_statistics (
        view_version text NOT NULL,
        dataset_version text NOT NULL,
        request text NOT NULL,
        response bytea NOT NULL,
        computed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (view_version, dataset_version, request)
      );
    `,
  },
];
