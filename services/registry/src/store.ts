import {
  type ArtifactFile,
  ArtifactFileSchema,
  type Deployment,
  DeploymentAction,
  DeploymentSchema,
  type GateVerdict,
  GateVerdictSchema,
  type Lineage,
  LineageSchema,
  type Metric,
  MetricSchema,
  type Model,
  ModelSchema,
  type ModelVersion,
  ModelVersionSchema,
  type PromotionPolicy,
  PromotionPolicySchema,
  type ServingProfile,
  ServingProfileSchema,
  type Signature,
  SignatureSchema,
  Task,
} from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { BallastError, notFound } from '@ballast/grpc-kit';
import { isUniqueViolation, type Sql } from '@ballast/storage';
import { activeTraceparent } from '@ballast/telemetry';
import {
  create,
  type DescMessage,
  fromJson,
  type JsonValue,
  type MessageShape,
  toJson,
} from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';

/**
 * The registry's persistence: plain functions over a `Sql` handle (the service's, or a
 * transaction's), returning contract messages. No rules live here; the domain modules
 * decide, this module reads and writes.
 */

const json = <D extends DescMessage>(schema: D, message: MessageShape<D>) =>
  JSON.stringify(toJson(schema, message));
const parse = <D extends DescMessage>(schema: D, value: unknown) =>
  fromJson(schema, (value ?? {}) as JsonValue, { ignoreUnknownFields: true });

interface ModelRow {
  name: string;
  description: string;
  task: keyof typeof Task;
  owner_team: string;
  tags: Record<string, string>;
  policy: unknown;
  last_version: number;
  created_at: Date;
  updated_at: Date;
}

export interface NewModel {
  name: string;
  description: string;
  task: Task;
  ownerTeam: string;
  tags: Record<string, string>;
  policy: PromotionPolicy;
}

export async function insertModel(sql: Sql, model: NewModel): Promise<Model> {
  try {
    await sql.query(
      `INSERT INTO models (name, description, task, owner_team, tags, policy) VALUES ($1, $2, $3, $4, $5, $6)`,
      [
        model.name,
        model.description,
        Task[model.task],
        model.ownerTeam,
        JSON.stringify(model.tags),
        json(PromotionPolicySchema, model.policy),
      ],
    );
  } catch (err) {
    if (isUniqueViolation(err))
      throw new BallastError('already_exists', `model ${model.name} already exists`);
    throw err;
  }
  return getModel(sql, model.name);
}

/** The model, or NOT_FOUND. `lock` takes its row lock for the rest of the transaction. */
export async function getModel(sql: Sql, name: string, options: { lock?: boolean } = {}): Promise<Model> {
  const { rows } = await sql.query<ModelRow>(
    `SELECT * FROM models WHERE name = $1${options.lock ? ' FOR UPDATE' : ''}`,
    [name],
  );
  const row = rows[0];
  if (!row) throw notFound(`model ${name} not found`);
  return toModel(row, await aliasesOf(sql, [name]));
}

export async function listModels(
  sql: Sql,
  ownerTeam: string,
  limit: number,
  offset: number,
): Promise<Model[]> {
  const { rows } = await sql.query<ModelRow>(
    `SELECT * FROM models WHERE ($1 = '' OR owner_team = $1) ORDER BY name LIMIT $2 OFFSET $3`,
    [ownerTeam, limit, offset],
  );
  const aliases = await aliasesOf(
    sql,
    rows.map((r) => r.name),
  );
  return rows.map((row) => toModel(row, aliases));
}

/**
 * Replaces the policy and appends the change (who, before, after) to policy_changes, in one
 * transaction under the model's row lock, so the history holds every change in order.
 */
export async function updatePolicy(
  sql: Sql,
  name: string,
  policy: PromotionPolicy,
  actor: string,
): Promise<Model> {
  return sql.transaction(async (tx) => {
    const { rows } = await tx.query<{ policy: unknown }>(
      `SELECT policy FROM models WHERE name = $1 FOR UPDATE`,
      [name],
    );
    const previous = rows[0];
    if (!previous) throw notFound(`model ${name} not found`);
    const next = json(PromotionPolicySchema, policy);
    await tx.query(`UPDATE models SET policy = $2, updated_at = now() WHERE name = $1`, [name, next]);
    await tx.query(
      `INSERT INTO policy_changes (model, actor, previous, policy, traceparent) VALUES ($1, $2, $3, $4, $5)`,
      [name, actor, JSON.stringify(previous.policy ?? {}), next, activeTraceparent()],
    );
    return getModel(tx, name);
  });
}

async function aliasesOf(sql: Sql, models: string[]): Promise<Map<string, Record<string, number>>> {
  const byModel = new Map<string, Record<string, number>>();
  if (models.length === 0) return byModel;
  const { rows } = await sql.query<{ model: string; alias: string; version: number }>(
    `SELECT model, alias, version FROM aliases WHERE model = ANY($1::text[]) ORDER BY alias`,
    [models],
  );
  for (const row of rows) {
    const entry = byModel.get(row.model) ?? {};
    entry[row.alias] = row.version;
    byModel.set(row.model, entry);
  }
  return byModel;
}

function toModel(row: ModelRow, aliases: Map<string, Record<string, number>>): Model {
  return create(ModelSchema, {
    name: row.name,
    description: row.description,
    task: Task[row.task],
    ownerTeam: row.owner_team,
    tags: row.tags,
    policy: parse(PromotionPolicySchema, row.policy),
    createTime: timestampFromDate(row.created_at),
    updateTime: timestampFromDate(row.updated_at),
    latestVersion: row.last_version,
    aliases: aliases.get(row.name) ?? {},
  });
}

// --- artifacts -------------------------------------------------------------------------

export interface ArtifactRecord {
  digest: string;
  files: ArtifactFile[];
  totalBytes: number;
}

/** Idempotent: the same digest is the same content. Returns false when it was already there. */
export async function insertArtifact(sql: Sql, artifact: ArtifactRecord): Promise<boolean> {
  const { rowCount } = await sql.query(
    `INSERT INTO artifacts (digest, files, total_bytes) VALUES ($1, $2, $3) ON CONFLICT (digest) DO NOTHING`,
    [
      artifact.digest,
      JSON.stringify(artifact.files.map((f) => toJson(ArtifactFileSchema, f))),
      artifact.totalBytes,
    ],
  );
  return rowCount === 1;
}

export async function findArtifact(sql: Sql, digest: string): Promise<ArtifactRecord | undefined> {
  const { rows } = await sql.query<{ digest: string; files: unknown[]; total_bytes: string }>(
    `SELECT digest, files, total_bytes FROM artifacts WHERE digest = $1`,
    [digest],
  );
  const row = rows[0];
  if (!row) return undefined;
  return {
    digest: row.digest,
    files: row.files.map((f) => parse(ArtifactFileSchema, f)),
    totalBytes: Number(row.total_bytes),
  };
}

// --- blob leases (artifacts.ts explains them) ------------------------------------------

/** Taken by every lease and every failed upload's cleanup, so a check and a delete are one step. */
const lockBlobs = (tx: Sql) =>
  tx.query(`SELECT pg_advisory_xact_lock(hashtextextended('ballast.registry.blobs', 0))`);

/** Records, before any byte is written, that upload `uploadId` needs these blobs. */
export async function leaseBlobs(sql: Sql, uploadId: string, sha256s: readonly string[]): Promise<void> {
  await sql.transaction(async (tx) => {
    await lockBlobs(tx);
    await tx.query(
      `INSERT INTO blob_leases (upload_id, sha256) SELECT $1, s FROM unnest($2::text[]) AS s ON CONFLICT DO NOTHING`,
      [uploadId, sha256s],
    );
  });
}

/** Ends an upload's leases; call it in the transaction that writes its artifact row. */
export async function releaseBlobLeases(tx: Sql, uploadId: string): Promise<void> {
  await tx.query(`DELETE FROM blob_leases WHERE upload_id = $1`, [uploadId]);
}

/**
 * Ends a failed upload's leases and hands `remove` the blobs among `sha256s` that no other
 * upload leases and no artifact lists; `remove` runs under the lock, so no upload can lease
 * one of them between the check and the delete (and a blob store in this database deletes
 * in `tx`, committing with the leases' end).
 */
export async function dropBlobLeases(
  sql: Sql,
  uploadId: string,
  sha256s: readonly string[],
  remove: (unneeded: string[], tx: Sql) => Promise<void>,
): Promise<void> {
  await sql.transaction(async (tx) => {
    await lockBlobs(tx);
    await releaseBlobLeases(tx, uploadId);
    // One statement, one snapshot: an upload that commits meanwhile is seen either still
    // leasing or already listed by its artifact row (both change in its one transaction).
    const { rows } = await tx.query<{ sha256: string }>(
      `SELECT s AS sha256 FROM unnest($1::text[]) AS s
       WHERE NOT EXISTS (SELECT 1 FROM blob_leases l WHERE l.sha256 = s)
         AND NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.files @> jsonb_build_array(jsonb_build_object('sha256', s)))`,
      [sha256s],
    );
    await remove(
      rows.map((r) => r.sha256),
      tx,
    );
  });
}

// --- versions --------------------------------------------------------------------------

export interface NewVersion {
  model: string;
  artifactDigest: string;
  lineage: Lineage;
  metrics: Metric[];
  servingProfile: ServingProfile;
  signature: Signature;
  description: string;
  createdBy: string;
}

interface VersionRow {
  model: string;
  version: number;
  artifact_digest: string;
  lineage: unknown;
  metrics: unknown[];
  serving_profile: unknown;
  signature: unknown;
  description: string;
  created_by: string;
  created_at: Date;
}

/**
 * Takes the next number from the model's counter under its row lock, so concurrent
 * registrations queue on the row and each gets its own number.
 */
export async function insertVersion(tx: Sql, version: NewVersion): Promise<ModelVersion> {
  const { rows } = await tx.query<{ last_version: number }>(
    `UPDATE models SET last_version = last_version + 1, updated_at = now() WHERE name = $1 RETURNING last_version`,
    [version.model],
  );
  const number = rows[0]?.last_version;
  if (number === undefined) throw notFound(`model ${version.model} not found`);
  await tx.query(
    `INSERT INTO model_versions
       (model, version, artifact_digest, lineage, metrics, serving_profile, signature, description, created_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [
      version.model,
      number,
      version.artifactDigest,
      json(LineageSchema, version.lineage),
      JSON.stringify(version.metrics.map((m) => toJson(MetricSchema, m))),
      json(ServingProfileSchema, version.servingProfile),
      json(SignatureSchema, version.signature),
      version.description,
      version.createdBy,
    ],
  );
  return getVersion(tx, version.model, number);
}

export async function findVersion(
  sql: Sql,
  model: string,
  version: number,
): Promise<ModelVersion | undefined> {
  const { rows } = await sql.query<VersionRow>(
    `SELECT * FROM model_versions WHERE model = $1 AND version = $2`,
    [model, version],
  );
  const row = rows[0];
  return row ? toVersion(row, await versionAliases(sql, model)) : undefined;
}

/** The version, or NOT_FOUND saying whether the model or the version is missing. */
export async function getVersion(sql: Sql, model: string, version: number): Promise<ModelVersion> {
  const found = await findVersion(sql, model, version);
  if (found) return found;
  await getModel(sql, model);
  throw notFound(`model ${model} has no version ${version}`);
}

export async function listVersions(
  sql: Sql,
  model: string,
  limit: number,
  offset: number,
): Promise<ModelVersion[]> {
  await getModel(sql, model);
  const { rows } = await sql.query<VersionRow>(
    `SELECT * FROM model_versions WHERE model = $1 ORDER BY version DESC LIMIT $2 OFFSET $3`,
    [model, limit, offset],
  );
  const aliases = await versionAliases(sql, model);
  return rows.map((row) => toVersion(row, aliases));
}

/**
 * Versions never change once written, so their bodies (everything but aliases) are kept per
 * database handle after the first read: the alias lookup inference makes on every swap is
 * then one small query. Bounded; the oldest entry goes first.
 */
const bodies = new WeakMap<Sql, Map<string, VersionRow>>();
const MAX_CACHED_VERSIONS = 1_000;

/** The version an alias points at, with all of that version's aliases; undefined if unset. */
export async function versionByAlias(
  sql: Sql,
  model: string,
  alias: string,
): Promise<ModelVersion | undefined> {
  const { rows } = await sql.query<{ version: number; aliases: string[] }>(
    `SELECT a.version,
            (SELECT coalesce(json_agg(b.alias ORDER BY b.alias), '[]'::json)
               FROM aliases b WHERE b.model = a.model AND b.version = a.version) AS aliases
       FROM aliases a WHERE a.model = $1 AND a.alias = $2`,
    [model, alias],
  );
  const found = rows[0];
  if (!found) return undefined;
  const cache = bodies.get(sql) ?? new Map<string, VersionRow>();
  bodies.set(sql, cache);
  const key = `${model}\u0000${found.version}`;
  let row = cache.get(key);
  if (!row) {
    const read = await sql.query<VersionRow>(
      `SELECT * FROM model_versions WHERE model = $1 AND version = $2`,
      [model, found.version],
    );
    row = read.rows[0];
    if (!row) return undefined;
    if (cache.size >= MAX_CACHED_VERSIONS) cache.delete(cache.keys().next().value as string);
    cache.set(key, row);
  }
  return toVersion(row, new Map([[found.version, found.aliases]]));
}

async function versionAliases(sql: Sql, model: string): Promise<Map<number, string[]>> {
  const { rows } = await sql.query<{ alias: string; version: number }>(
    `SELECT alias, version FROM aliases WHERE model = $1 ORDER BY alias`,
    [model],
  );
  const byVersion = new Map<number, string[]>();
  for (const row of rows) byVersion.set(row.version, [...(byVersion.get(row.version) ?? []), row.alias]);
  return byVersion;
}

function toVersion(row: VersionRow, aliases: Map<number, string[]>): ModelVersion {
  return create(ModelVersionSchema, {
    model: row.model,
    version: row.version,
    artifactDigest: row.artifact_digest,
    lineage: parse(LineageSchema, row.lineage),
    metrics: row.metrics.map((m) => parse(MetricSchema, m)),
    servingProfile: parse(ServingProfileSchema, row.serving_profile),
    signature: parse(SignatureSchema, row.signature),
    description: row.description,
    createdBy: row.created_by,
    createTime: timestampFromDate(row.created_at),
    aliases: aliases.get(row.version) ?? [],
  });
}

// --- aliases and deployments -----------------------------------------------------------

/**
 * Every alias change runs under this one lock, so deployment sequences commit in order
 * and watchers reading "sequence > n" never skip a change that commits late.
 */
export async function lockDeployments(tx: Sql): Promise<void> {
  await tx.query(`SELECT pg_advisory_xact_lock(hashtextextended('ballast.registry.deployments', 0))`);
}

export async function aliasVersion(sql: Sql, model: string, alias: string): Promise<number | undefined> {
  const { rows } = await sql.query<{ version: number }>(
    `SELECT version FROM aliases WHERE model = $1 AND alias = $2`,
    [model, alias],
  );
  return rows[0]?.version;
}

export interface NewDeployment {
  model: string;
  alias: string;
  fromVersion: number;
  toVersion: number;
  action: DeploymentAction;
  actor: string;
  reason: string;
  verdict?: GateVerdict | undefined;
  /** The W3C traceparent of the call making the change; default: the active span's. */
  traceparent?: string;
}

/** Moves (or, with toVersion 0, deletes) the alias and appends the change to the history. */
export async function recordDeployment(tx: Sql, change: NewDeployment): Promise<Deployment> {
  if (change.toVersion === 0) {
    await tx.query(`DELETE FROM aliases WHERE model = $1 AND alias = $2`, [change.model, change.alias]);
  } else {
    await tx.query(
      `INSERT INTO aliases (model, alias, version) VALUES ($1, $2, $3)
       ON CONFLICT (model, alias) DO UPDATE SET version = EXCLUDED.version, updated_at = now()`,
      [change.model, change.alias, change.toVersion],
    );
  }
  const { rows } = await tx.query<DeploymentRow>(
    `INSERT INTO deployments (model, alias, from_version, to_version, action, actor, reason, verdict, traceparent)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *`,
    [
      change.model,
      change.alias,
      change.fromVersion,
      change.toVersion,
      DeploymentAction[change.action],
      change.actor,
      change.reason,
      change.verdict ? json(GateVerdictSchema, change.verdict) : null,
      change.traceparent ?? activeTraceparent(),
    ],
  );
  return toDeployment(rows[0] as DeploymentRow);
}

interface DeploymentRow {
  sequence: string;
  model: string;
  alias: string;
  from_version: number;
  to_version: number;
  action: keyof typeof DeploymentAction;
  actor: string;
  reason: string;
  verdict: unknown;
  created_at: Date;
  traceparent: string;
}

export interface DeploymentQuery {
  model?: string;
  alias?: string;
  afterSequence?: bigint;
  /** Oldest first (watchers) or newest first (history pages). */
  order: 'asc' | 'desc';
  limit: number;
  offset?: number;
}

export async function listDeployments(sql: Sql, query: DeploymentQuery): Promise<Deployment[]> {
  const { rows } = await sql.query<DeploymentRow>(
    `SELECT * FROM deployments
     WHERE ($1 = '' OR model = $1) AND ($2 = '' OR alias = $2) AND sequence > $3
     ORDER BY sequence ${query.order === 'asc' ? 'ASC' : 'DESC'} LIMIT $4 OFFSET $5`,
    [
      query.model ?? '',
      query.alias ?? '',
      (query.afterSequence ?? 0n).toString(),
      query.limit,
      query.offset ?? 0,
    ],
  );
  return rows.map(toDeployment);
}

/** Every alias with its version and the traceparent of the change that set it. */
export async function currentAliases(
  sql: Sql,
  model: string,
): Promise<{ model: string; alias: string; version: number; traceparent: string }[]> {
  const { rows } = await sql.query<{ model: string; alias: string; version: number; traceparent: string }>(
    `SELECT a.model, a.alias, a.version, coalesce(d.traceparent, '') AS traceparent
     FROM aliases a
     LEFT JOIN LATERAL (
       SELECT traceparent FROM deployments
       WHERE model = a.model AND alias = a.alias
       ORDER BY sequence DESC LIMIT 1
     ) d ON true
     WHERE ($1 = '' OR a.model = $1) ORDER BY a.model, a.alias`,
    [model],
  );
  return rows;
}

export async function lastSequence(sql: Sql): Promise<bigint> {
  const { rows } = await sql.query<{ last: string | null }>(
    `SELECT max(sequence)::text AS last FROM deployments`,
  );
  return BigInt(rows[0]?.last ?? 0);
}

function toDeployment(row: DeploymentRow): Deployment {
  return create(DeploymentSchema, {
    sequence: BigInt(row.sequence),
    model: row.model,
    alias: row.alias,
    fromVersion: row.from_version,
    toVersion: row.to_version,
    action: DeploymentAction[row.action],
    actor: row.actor,
    reason: row.reason,
    verdict: row.verdict ? parse(GateVerdictSchema, row.verdict) : undefined,
    time: timestampFromDate(row.created_at),
    traceparent: row.traceparent,
  });
}
