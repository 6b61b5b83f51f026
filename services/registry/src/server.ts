import {
  PromotionPolicySchema,
  type RegistryService,
} from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { BallastError, type HandlerContext, type ServiceImpl } from '@ballast/grpc-kit';
import type { Sql } from '@ballast/storage';
import { create } from '@bufbuild/protobuf';
import {
  type ArtifactBlobs,
  type ArtifactLimits,
  checkBlobsStored,
  downloadArtifact,
  uploadArtifact,
} from './artifacts.js';
import type { TeamAuth } from './auth.js';
import { compareVersions } from './compare.js';
import { deleteAlias, promote, rollback, setAlias } from './deployments.js';
import * as store from './store.js';
import {
  checkAlias,
  checkLineage,
  checkMetrics,
  checkName,
  checkPolicy,
  checkServingProfile,
  checkSignature,
  checkTags,
  checkTask,
  checkText,
  checkVersionNumber,
  pageOffset,
  pageSize,
} from './validation.js';
import { type DeploymentFeed, watchDeployments } from './watch.js';

export interface RegistryDeps {
  /** The service's database (a getter: the store opens lazily and may not be open yet). */
  sql: () => Sql;
  blobs: ArtifactBlobs;
  feed: DeploymentFeed;
  limits: ArtifactLimits;
  /** How often watchers look for changes made by other registry replicas. */
  watchPollMs: number;
  auth: TeamAuth;
}

const MAX_CHUNK = 1024 * 1024;
// A reader that stops reading pins about four chunks (the read-ahead, the chunk, its encoding
// and its gRPC frame): 256 KiB chunks keep that under issue 17's 1 MiB per stalled reader.
const DEFAULT_CHUNK = 256 * 1024;

/** The registry's RPC handlers: validate, call the domain function, shape the answer. */
export function registryService(deps: RegistryDeps): ServiceImpl<typeof RegistryService> {
  const { sql, blobs, feed, auth } = deps;
  /** A write to a model: allowed to its owning team only (when teams are configured). */
  const writer = async (ctx: HandlerContext, model: string, what: string) =>
    auth.authorize(ctx, (await store.getModel(sql(), model)).ownerTeam, `${what} of model ${model}`);
  const changed = <T>(result: T): T => {
    feed.notify();
    return result;
  };
  return {
    async createModel(req, ctx) {
      checkPolicy('policy', req.policy);
      const name = checkName('name', req.name);
      auth.authorizeOwner(ctx, checkName('owner_team', req.ownerTeam));
      const model = await store.insertModel(sql(), {
        name,
        description: checkText('description', req.description, 4096),
        task: checkTask('task', req.task),
        ownerTeam: checkName('owner_team', req.ownerTeam),
        tags: checkTags('tags', req.tags),
        policy: req.policy ?? create(PromotionPolicySchema),
      });
      return { model };
    },
    async getModel(req) {
      return { model: await store.getModel(sql(), checkName('name', req.name)) };
    },
    async listModels(req) {
      const limit = pageSize('page_size', req.pageSize, 100);
      const offset = pageOffset('page_token', req.pageToken);
      if (req.ownerTeam) checkName('owner_team', req.ownerTeam);
      const models = await store.listModels(sql(), req.ownerTeam, limit + 1, offset);
      return page(models, limit, offset, (items) => ({ models: items }));
    },
    async updatePromotionPolicy(req, ctx) {
      checkPolicy('policy', req.policy);
      const model = checkName('model', req.model);
      const caller = await writer(ctx, model, 'changing the promotion policy');
      return {
        model: await store.updatePolicy(
          sql(),
          model,
          req.policy ?? create(PromotionPolicySchema),
          caller.actor,
        ),
      };
    },

    async uploadArtifact(requests, ctx) {
      auth.authorize(ctx, undefined, 'uploading an artifact');
      const uploaded = await uploadArtifact(sql(), blobs, requests, deps.limits);
      return { ...uploaded, totalBytes: BigInt(uploaded.totalBytes) };
    },
    async *downloadArtifact(req) {
      if (req.chunkBytes < 0) checkVersionNumber('chunk_bytes', req.chunkBytes);
      yield* downloadArtifact(sql(), blobs, req.digest, Math.min(req.chunkBytes || DEFAULT_CHUNK, MAX_CHUNK));
    },

    async createModelVersion(req, ctx) {
      const model = checkName('model', req.model);
      const lineage = checkLineage('lineage', req.lineage);
      const metrics = checkMetrics('metrics', req.metrics);
      checkServingProfile('serving_profile', req.servingProfile);
      checkSignature('signature', req.signature);
      const description = checkText('description', req.description, 4096);
      const caller = await writer(ctx, model, 'registering a version');
      const db = sql();
      const version = await db.transaction(async (tx) => {
        await store.getModel(tx, model);
        const artifact = await store.findArtifact(tx, req.artifactDigest);
        if (!artifact) throw notUploaded(req.artifactDigest);
        await checkBlobsStored(blobs, artifact, tx);
        return store.insertVersion(tx, {
          model,
          artifactDigest: artifact.digest,
          lineage,
          metrics,
          // The artifact's size is known here; the caller's figure is not trusted.
          servingProfile: { ...req.servingProfile!, artifactBytes: BigInt(artifact.totalBytes) },
          signature: req.signature!,
          description,
          createdBy: caller.actor,
        });
      });
      return { version };
    },
    async getModelVersion(req) {
      return {
        version: await store.getVersion(
          sql(),
          checkName('model', req.model),
          checkVersionNumber('version', req.version),
        ),
      };
    },
    async listModelVersions(req) {
      const limit = pageSize('page_size', req.pageSize, 100);
      const offset = pageOffset('page_token', req.pageToken);
      const versions = await store.listVersions(sql(), checkName('model', req.model), limit + 1, offset);
      return page(versions, limit, offset, (items) => ({ versions: items }));
    },
    async compareVersions(req) {
      const model = checkName('model', req.model);
      const db = sql();
      const a = await store.getVersion(db, model, checkVersionNumber('a', req.a));
      const b = await store.getVersion(db, model, checkVersionNumber('b', req.b));
      return compareVersions(a, b);
    },

    async setAlias(req, ctx) {
      const input = {
        model: checkName('model', req.model),
        alias: checkAlias('alias', req.alias),
        version: checkVersionNumber('version', req.version),
        reason: checkText('reason', req.reason, 1024),
      };
      return {
        deployment: changed(await setAlias(sql(), input, await writer(ctx, input.model, 'setting an alias'))),
      };
    },
    async deleteAlias(req, ctx) {
      const input = {
        model: checkName('model', req.model),
        alias: checkAlias('alias', req.alias),
        reason: checkText('reason', req.reason, 1024),
      };
      return {
        deployment: changed(
          await deleteAlias(sql(), input, await writer(ctx, input.model, 'deleting an alias')),
        ),
      };
    },
    async getVersionByAlias(req) {
      const model = checkName('model', req.model);
      const alias = checkAlias('alias', req.alias);
      const version = await store.versionByAlias(sql(), model, alias);
      if (version) return { version };
      await store.getModel(sql(), model);
      throw new BallastError('not_found', `model ${model} has no alias ${alias}`);
    },
    async promote(req, ctx) {
      const input = {
        model: checkName('model', req.model),
        version: checkVersionNumber('version', req.version),
        reason: checkText('reason', req.reason, 1024),
        force: req.force,
      };
      return {
        deployment: changed(
          await promote(sql(), input, await writer(ctx, input.model, 'promoting a version')),
        ),
      };
    },
    async rollback(req, ctx) {
      const input = { model: checkName('model', req.model), reason: checkText('reason', req.reason, 1024) };
      return {
        deployment: changed(await rollback(sql(), input, await writer(ctx, input.model, 'rolling back'))),
      };
    },
    async listDeployments(req) {
      const model = checkName('model', req.model);
      const limit = pageSize('page_size', req.pageSize, 100);
      const offset = pageOffset('page_token', req.pageToken);
      await store.getModel(sql(), model);
      const deployments = await store.listDeployments(sql(), {
        model,
        alias: req.alias ? checkAlias('alias', req.alias) : '',
        order: 'desc',
        limit: limit + 1,
        offset,
      });
      return page(deployments, limit, offset, (items) => ({ deployments: items }));
    },
    async *watchDeployments(req, ctx) {
      const model = req.model ? checkName('model', req.model) : '';
      if (req.afterSequence < 0n) checkVersionNumber('after_sequence', Number(req.afterSequence));
      yield* watchDeployments(sql, feed, {
        model,
        afterSequence: req.afterSequence,
        pollMs: deps.watchPollMs,
        signal: ctx.signal,
      });
    },
  };
}

/** One more row than the page is read, so the token is only given when more exist. */
function page<T, R>(
  rows: T[],
  limit: number,
  offset: number,
  shape: (items: T[]) => R,
): R & { nextPageToken: string } {
  const more = rows.length > limit;
  return { ...shape(rows.slice(0, limit)), nextPageToken: more ? String(offset + limit) : '' };
}

function notUploaded(digest: string): BallastError {
  return new BallastError(
    'failed_precondition',
    `artifact_digest: no artifact ${JSON.stringify(digest.slice(0, 80))} has been uploaded; UploadArtifact first`,
    'artifact_digest',
    'must name an uploaded artifact',
  );
}
