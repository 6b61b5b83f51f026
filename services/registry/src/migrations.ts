import type { Migration } from '@ballast/storage';

/**
 * The registry service's schema, forward-only: append new migrations, never edit an applied
 * one (storage refuses a changed migration by its checksum).
 *
 * Messages from the contract (policy, lineage, metrics, profile, signature, verdict) are kept
 * as their protobuf JSON in jsonb columns: the proto stays the one definition of their shape,
 * and nothing here queries inside them.
 */
export const migrations: Migration[] = [
  {
    id: '0001_models_versions_artifacts',
    sql: `
      CREATE TABLE models (
        name          text PRIMARY KEY,
        description   text NOT NULL DEFAULT '',
        task          text NOT NULL,
        owner_team    text NOT NULL,
        tags          jsonb NOT NULL DEFAULT '{}',
        policy        jsonb NOT NULL DEFAULT '{}',
        -- Versions are numbered from this counter under the row's lock, so two concurrent
        -- registrations can never take the same number.
        last_version  integer NOT NULL DEFAULT 0,
        created_at    timestamptz NOT NULL DEFAULT now(),
        updated_at    timestamptz NOT NULL DEFAULT now()
      );

      CREATE TABLE artifacts (
        digest        text PRIMARY KEY,
        files         jsonb NOT NULL,
        total_bytes   bigint NOT NULL,
        created_at    timestamptz NOT NULL DEFAULT now()
      );

      CREATE TABLE model_versions (
        model            text NOT NULL REFERENCES models (name),
        version          integer NOT NULL,
        artifact_digest  text NOT NULL REFERENCES artifacts (digest),
        lineage          jsonb NOT NULL,
        metrics          jsonb NOT NULL,
        serving_profile  jsonb NOT NULL,
        signature        jsonb NOT NULL,
        description      text NOT NULL DEFAULT '',
        created_by       text NOT NULL,
        created_at       timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (model, version)
      );

      CREATE TABLE aliases (
        model       text NOT NULL,
        alias       text NOT NULL,
        version     integer NOT NULL,
        updated_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (model, alias),
        FOREIGN KEY (model, version) REFERENCES model_versions (model, version)
      );

      -- Append-only. Written under one advisory lock, so sequence order is commit order and
      -- a watcher reading "sequence > n" can never skip a change that commits late.
      CREATE TABLE deployments (
        sequence      bigserial PRIMARY KEY,
        model         text NOT NULL REFERENCES models (name),
        alias         text NOT NULL,
        from_version  integer NOT NULL DEFAULT 0,
        to_version    integer NOT NULL DEFAULT 0,
        action        text NOT NULL,
        actor         text NOT NULL,
        reason        text NOT NULL DEFAULT '',
        verdict       jsonb,
        created_at    timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX deployments_model_alias ON deployments (model, alias, sequence);
    `,
  },
  {
    // The traceparent of the call that made an alias change (Deployment.traceparent): a
    // server that loads the version links its trace to the promotion's.
    id: '0002_deployment_traceparent',
    sql: `ALTER TABLE deployments ADD COLUMN traceparent text NOT NULL DEFAULT '';`,
  },
  {
    // An upload leases every blob its manifest lists before it writes any (artifacts.ts says
    // why); the lease goes in the transaction that writes the artifact row, or when the
    // upload fails.
    id: '0003_blob_leases',
    sql: `
      CREATE TABLE blob_leases (
        upload_id   text NOT NULL,
        sha256      text NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (upload_id, sha256)
      );
      CREATE INDEX blob_leases_sha256 ON blob_leases (sha256);
    `,
  },
  {
    // Append-only: every UpdatePromotionPolicy, who made it, and the policy before and after
    // (protobuf JSON), beside the alias history in deployments.
    id: '0004_policy_changes',
    sql: `
      CREATE TABLE policy_changes (
        sequence     bigserial PRIMARY KEY,
        model        text NOT NULL REFERENCES models (name),
        actor        text NOT NULL,
        previous     jsonb NOT NULL,
        policy       jsonb NOT NULL,
        traceparent  text NOT NULL DEFAULT '',
        created_at   timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX policy_changes_model ON policy_changes (model, sequence);
    `,
  },
  {
    // Blobs kept in the database (BALLAST_REGISTRY_BLOB_STORE=postgres; see
    // blob-stores/postgres-blob-store.ts): a blob row points at its parts, which are written
    // first under an id nothing points at, so a blob appears whole or not at all.
    id: '0005_blob_store',
    sql: `
      CREATE TABLE blob_parts (
        part_id     text NOT NULL,
        seq         integer NOT NULL,
        data        bytea NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (part_id, seq)
      );
      CREATE TABLE blobs (
        sha256      text PRIMARY KEY,
        part_id     text NOT NULL UNIQUE,
        size        bigint NOT NULL,
        parts       integer NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
];
