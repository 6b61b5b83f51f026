import type { Migration } from '@ballast/storage';

/**
 * The monitor service's schema, forward-only: append new migrations, never edit an applied
 * one (storage refuses a changed migration by its checksum).
 *
 * Times are milliseconds since the epoch (bigint): windows are aligned on them and compared,
 * never formatted, and both backends keep them exactly.
 */
export const migrations: Migration[] = [
  {
    id: '0001_baselines_windows_predictions_alerts',
    sql: `
      CREATE TABLE baselines (
        model       text NOT NULL,
        version     integer NOT NULL,
        data        jsonb NOT NULL,
        updated_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (model, version)
      );

      -- One fixed-bin histogram per model version, window, segment ('' = all rows) and
      -- feature: bounded by the bins, whatever the traffic.
      CREATE TABLE window_stats (
        model         text NOT NULL,
        version       integer NOT NULL,
        window_start  bigint NOT NULL,
        segment       text NOT NULL,
        feature       text NOT NULL,
        hist          jsonb NOT NULL,
        PRIMARY KEY (model, version, window_start, segment, feature)
      );

      -- Jobs already absorbed, written in the same transaction as their statistics, so a
      -- job BullMQ delivers twice is counted once.
      CREATE TABLE processed_jobs (
        job_id  text PRIMARY KEY,
        at      timestamptz NOT NULL DEFAULT now()
      );

      CREATE TABLE counters (
        name   text PRIMARY KEY,
        value  bigint NOT NULL
      );

      -- Logged predictions with an entity key, for actuals to join later.
      CREATE TABLE predictions (
        model       text NOT NULL,
        version     integer NOT NULL,
        entity_key  text NOT NULL,
        time_ms     bigint NOT NULL,
        segment     text NOT NULL,
        prediction  double precision NOT NULL
      );
      CREATE INDEX predictions_join ON predictions (model, entity_key, time_ms);

      CREATE TABLE error_stats (
        model         text NOT NULL,
        version       integer NOT NULL,
        window_start  bigint NOT NULL,
        segment       text NOT NULL,
        n             bigint NOT NULL,
        sum_abs       double precision NOT NULL,
        sum_sq        double precision NOT NULL,
        sum_ape       double precision NOT NULL,
        n_ape         bigint NOT NULL,
        correct       bigint NOT NULL,
        PRIMARY KEY (model, version, window_start, segment)
      );

      CREATE TABLE alert_rules (
        model  text NOT NULL,
        name   text NOT NULL,
        rule   jsonb NOT NULL,
        PRIMARY KEY (model, name)
      );

      -- Alert state per rule and segment: pending (condition holding, not yet for long
      -- enough), firing or resolved. At most one open (pending or firing) row per
      -- rule and segment: that is the deduplication.
      CREATE TABLE alerts (
        id            text PRIMARY KEY,
        model         text NOT NULL,
        rule          text NOT NULL,
        segment       text NOT NULL,
        state         text NOT NULL,
        alert         jsonb NOT NULL,
        updated_at    timestamptz NOT NULL DEFAULT now()
      );
      CREATE UNIQUE INDEX alerts_open ON alerts (model, rule, segment) WHERE state <> 'resolved';

      CREATE TABLE retrains (
        model     text NOT NULL,
        job_id    text NOT NULL,
        alert_id  text NOT NULL,
        at_ms     bigint NOT NULL
      );
      CREATE INDEX retrains_model ON retrains (model, at_ms);
    `,
  },
  {
    id: '0002_actuals_seen',
    sql: `
      -- Actuals already joined, so one recorded twice (a retried call) counts once.
      CREATE TABLE actuals_seen (
        model       text NOT NULL,
        entity_key  text NOT NULL,
        time_ms     bigint NOT NULL,
        PRIMARY KEY (model, entity_key, time_ms)
      );
    `,
  },
  {
    id: '0003_error_auc_bins',
    sql: `
      -- Classification: predictions of positive and of negative actuals over fixed bins of
      -- [0, 1], summed like the other error columns, for AUC.
      ALTER TABLE error_stats ADD COLUMN pos jsonb, ADD COLUMN neg jsonb;
    `,
  },
  {
    id: '0004_actuals_sources',
    sql: `
      -- The last dataset version whose records were read as actuals, per model and dataset.
      CREATE TABLE actuals_sources (
        model    text NOT NULL,
        dataset  text NOT NULL,
        version  text NOT NULL,
        records  bigint NOT NULL,
        read_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (model, dataset)
      );
    `,
  },
];
