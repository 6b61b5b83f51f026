// The registry service: models, versions, artifacts, lineage, aliases and gated promotion.
// Config, telemetry and stores are wired here; RPC handlers live in server.ts.

import { commonConfig, loadConfig, serviceConfig } from '@ballast/config';
import { RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { runMain, runService, serve } from '@ballast/grpc-kit';
import { openServiceStore } from '@ballast/storage';
import { createLogger } from '@ballast/telemetry';
import { migrations } from './migrations.js';
import { registryService } from './server.js';

runMain(async () => {
  const config = loadConfig({ ...commonConfig, ...serviceConfig('registry') });
  const log = createLogger({ service: 'registry', level: config.BALLAST_LOG_LEVEL });
  const store = openServiceStore({
    url: config.BALLAST_DATABASE_URL,
    dataDir: config.BALLAST_DATA_DIR,
    schema: 'registry',
    migrations,
  });
  await runService({
    name: 'registry',
    log,
    grpc: {
      host: config.BALLAST_GRPC_HOST,
      port: config.BALLAST_REGISTRY_GRPC_PORT,
      services: [serve(RegistryService, registryService(store))],
      authToken: config.BALLAST_AUTH_TOKEN,
      maxMessageBytes: config.BALLAST_GRPC_MAX_MESSAGE_BYTES,
    },
    http: { host: config.BALLAST_GRPC_HOST, port: config.BALLAST_REGISTRY_HTTP_PORT },
    dependencies: [{ name: 'database', check: () => store.ping() }],
    prepare: () => store.migrate(),
    close: [() => store.close()],
    shutdownGraceMs: config.BALLAST_SHUTDOWN_GRACE_MS,
  });
});
