// The registry service: models, versions, artifacts, lineage, aliases and gated promotion.
// Config, telemetry and stores are wired here; RPC handlers live in server.ts.

import { commonConfig, durationMs, int, loadConfig, serviceConfig, str } from '@ballast/config';
import { RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { runMain, runService, serve } from '@ballast/grpc-kit';
import { weightBudgetFromEnv } from '@ballast/ml/artifact';
import { openServiceStore } from '@ballast/storage';
import { createLogger } from '@ballast/telemetry';
import { DEFAULT_ARTIFACT_LIMITS } from './artifacts.js';
import { parseTeamTokens, TeamAuth } from './auth.js';
import { blobStoreConfig, openBlobStore, sweepLeftovers } from './blob-stores/open-blob-store.js';
import { migrations } from './migrations.js';
import { registryService } from './server.js';
import { DeploymentFeed } from './watch.js';

runMain(async () => {
  const config = loadConfig({
    ...commonConfig,
    ...serviceConfig('registry'),
    ...blobStoreConfig,
    BALLAST_REGISTRY_MAX_ARTIFACT_BYTES: int({ min: 1 }).default(DEFAULT_ARTIFACT_LIMITS.maxArtifactBytes),
    /** How soon watchers see alias changes made by another registry replica. */
    BALLAST_REGISTRY_WATCH_POLL_MS: durationMs().default(1_000),
    /** `team=token,...`: writes to a model need its owning team's token. Unset: open. */
    BALLAST_REGISTRY_TEAM_TOKENS: str().optional(),
  });
  // A bad team name stops the start here, named in the message (parseTeamTokens).
  const teams = parseTeamTokens(config.BALLAST_REGISTRY_TEAM_TOKENS);
  // BALLAST_MODEL_MAX_WEIGHT_BYTES: the weights an uploaded model.json may declare or imply.
  const weightBudget = weightBudgetFromEnv();
  const log = createLogger({ service: 'registry', level: config.BALLAST_LOG_LEVEL });
  const store = openServiceStore({
    url: config.BALLAST_DATABASE_URL,
    dataDir: config.BALLAST_DATA_DIR,
    schema: 'registry',
    migrations,
  });
  const blobs = openBlobStore(config, () => store.sql);
  log.info(
    { blobStore: config.BALLAST_REGISTRY_BLOB_STORE, location: blobs.location },
    'artifact blob store',
  );
  await runService({
    name: 'registry',
    log,
    grpc: {
      host: config.BALLAST_GRPC_HOST,
      port: config.BALLAST_REGISTRY_GRPC_PORT,
      services: [
        serve(
          RegistryService,
          registryService({
            sql: () => store.sql,
            blobs,
            feed: new DeploymentFeed(),
            limits: {
              ...DEFAULT_ARTIFACT_LIMITS,
              maxArtifactBytes: config.BALLAST_REGISTRY_MAX_ARTIFACT_BYTES,
              weightBudget,
            },
            watchPollMs: config.BALLAST_REGISTRY_WATCH_POLL_MS,
            auth: new TeamAuth(teams),
          }),
        ),
      ],
      authToken: config.BALLAST_AUTH_TOKEN,
      maxMessageBytes: config.BALLAST_GRPC_MAX_MESSAGE_BYTES,
    },
    http: { host: config.BALLAST_GRPC_HOST, port: config.BALLAST_REGISTRY_HTTP_PORT },
    dependencies: [{ name: 'database', check: () => store.ping() }],
    // Until the schema is migrated, health says NOT_SERVING and every call is UNAVAILABLE (runService).
    prepare: async () => {
      await store.migrate();
      await sweepLeftovers(blobs, log);
    },
    close: [() => store.close()],
    shutdownGraceMs: config.BALLAST_SHUTDOWN_GRACE_MS,
  });
});
