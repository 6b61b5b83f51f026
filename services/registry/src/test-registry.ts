import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import {
  type CallOptions,
  createClient,
  type GrpcServer,
  type ServiceClient,
  serve,
  startGrpcServer,
} from '@ballast/grpc-kit';
import { migrate, openDatabase, type Sql, type SqlKind } from '@ballast/storage';
import { Metadata } from '@grpc/grpc-js';
import { type ArtifactLimits, DEFAULT_ARTIFACT_LIMITS } from './artifacts.js';
import { ACTOR_HEADER, TEAM_TOKEN_HEADER, TeamAuth } from './auth.js';
import type { ArtifactBlobs } from './blob-stores/blob-store.js';
import { fsBlobStore } from './blob-stores/open-blob-store.js';
import { PostgresBlobStore } from './blob-stores/postgres-blob-store.js';
import { migrations } from './migrations.js';
import { registryService } from './server.js';
import { DeploymentFeed } from './watch.js';

/**
 * A real registry for tests: the service's handlers on a grpc-js server over loopback, on
 * a real Postgres schema or a PGlite directory, with a blob store in a temp directory (or,
 * with blobStore 'postgres', in that database).
 */

export const TEST_DATABASE_URL =
  process.env.BALLAST_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const BACKENDS: readonly SqlKind[] = ['postgres', 'pglite'];

const quiet = {
  info() {},
  warn() {},
  error(obj: object, msg?: string) {
    if (process.env.REGISTRY_TEST_LOG) console.error(msg, obj);
  },
};

export interface TestRegistry {
  client: ServiceClient<typeof RegistryService>;
  address: string;
  sql: Sql;
  blobs: ArtifactBlobs;
  /** The sha256 of every blob currently stored (a file's name, on fs). */
  blobFiles(): Promise<string[]>;
  /** Another client on the same server (e.g. one whose stream is dropped). */
  connect(): ServiceClient<typeof RegistryService>;
  close(): Promise<void>;
}

export async function startTestRegistry(
  kind: SqlKind,
  options: {
    limits?: Partial<ArtifactLimits>;
    watchPollMs?: number;
    /** team -> token; unset leaves writes open. */
    teams?: Record<string, string>;
    /** Where blobs live (BALLAST_REGISTRY_BLOB_STORE); default fs, in the temp directory. */
    blobStore?: 'fs' | 'postgres';
  } = {},
): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'ballast-registry-test-'));
  const schema = `t_registry_${randomBytes(4).toString('hex')}`;
  const sql =
    kind === 'postgres'
      ? await openDatabase({ url: TEST_DATABASE_URL, schema })
      : await openDatabase({ dataDir: dir, schema: 'registry' });
  await migrate(sql, migrations);
  const blobs =
    options.blobStore === 'postgres' ? new PostgresBlobStore(() => sql) : fsBlobStore(join(dir, 'artifacts'));
  const server: GrpcServer = await startGrpcServer({
    services: [
      serve(
        RegistryService,
        registryService({
          sql: () => sql,
          blobs,
          feed: new DeploymentFeed(),
          limits: { ...DEFAULT_ARTIFACT_LIMITS, ...options.limits },
          watchPollMs: options.watchPollMs ?? 1_000,
          auth: new TeamAuth(options.teams && new Map(Object.entries(options.teams))),
        }),
      ),
    ],
    host: '127.0.0.1',
    port: 0,
    log: quiet,
    shutdownGraceMs: 1_000,
  });
  server.setReady(true);
  const address = `127.0.0.1:${server.port}`;
  const clients: ServiceClient<typeof RegistryService>[] = [];
  const connect = () => {
    const client = createClient(RegistryService, { address, deadlineMs: 60_000 });
    clients.push(client);
    return client;
  };
  return {
    client: connect(),
    address,
    sql,
    blobs,
    connect,
    async blobFiles() {
      if (options.blobStore === 'postgres')
        return (await sql.query<{ sha256: string }>(`SELECT sha256 FROM blobs`)).rows.map((r) => r.sha256);
      const root = join(dir, 'artifacts', 'sha256');
      const shards = await readdir(root).catch(() => [] as string[]);
      const files = await Promise.all(shards.map((s) => readdir(join(root, s)).catch(() => [] as string[])));
      return files.flat().filter((f) => !f.startsWith('.'));
    },
    async close() {
      for (const client of clients) client.close();
      await server.shutdown();
      if (kind === 'postgres') await sql.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await sql.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Call options that name the caller (recorded in the history) and, optionally, its team token. */
export function as(actor: string, teamToken?: string): CallOptions {
  const metadata = new Metadata();
  metadata.set(ACTOR_HEADER, actor);
  if (teamToken) metadata.set(TEAM_TOKEN_HEADER, teamToken);
  return { metadata };
}
