import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { createClient, type ServiceClient, serve, startGrpcServer } from '@ballast/grpc-kit';
import { connectRedis, createQueue, QueueNames } from '@ballast/queue';
import { migrate, openDatabase, type Sql, type SqlKind } from '@ballast/storage';
import { migrations } from './migrations.js';
import { type IngestDeps, ingestService } from './server.js';
import type { Limits } from './validation.js';

export const TEST_DATABASE_URL =
  process.env.BALLAST_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const BACKENDS: readonly SqlKind[] = ['postgres', 'pglite'];

export const silentLog = { info: () => {}, warn: () => {}, error: () => {} };

export function uniqueName(label: string): string {
  return `t_ingest_${label}_${randomBytes(4).toString('hex')}`;
}

/** A database of one backend in a schema (or PGlite directory) of its own, removed by close(). */
export async function openTestDatabase(
  kind: SqlKind,
): Promise<{ sql: Sql; url?: string; dataDir?: string; close(): Promise<void> }> {
  const schema = uniqueName('db');
  if (kind === 'postgres') {
    const sql = await openDatabase({ url: TEST_DATABASE_URL, schema });
    return {
      sql,
      url: TEST_DATABASE_URL,
      async close() {
        await sql.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        await sql.close();
      },
    };
  }
  const dataDir = await mkdtemp(join(tmpdir(), 'ballast-ingest-test-'));
  const sql = await openDatabase({ dataDir, schema });
  return {
    sql,
    dataDir,
    async close() {
      await sql.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface TestIngest {
  client: ServiceClient<typeof IngestService>;
  sql: Sql;
  address: string;
  /** The features.materialize queue the service enqueues to (a prefix of this test's own). */
  queue: ReturnType<typeof createQueue<'features.materialize'>>;
  close(): Promise<void>;
}

/** The ingest service on a loopback port over a fresh database, with a real BullMQ queue. */
export async function startTestIngest(
  kind: SqlKind,
  limits?: Partial<Limits>,
  commitSort?: IngestDeps['commitSort'],
): Promise<TestIngest> {
  const db = await openTestDatabase(kind);
  await migrate(db.sql, migrations);
  const redis = connectRedis();
  const queue = createQueue(QueueNames.featuresMaterialize, {
    connection: redis,
    prefix: uniqueName('q'),
    telemetry: false,
  });
  const server = await startGrpcServer({
    services: [
      serve(
        IngestService,
        ingestService({
          db: () => db.sql,
          enqueue: (job) =>
            queue.add('materialize', job, { jobId: `${job.datasetName}.${job.datasetVersion}` }),
          ...(limits ? { limits } : {}),
          ...(commitSort ? { commitSort } : {}),
        }),
      ),
    ],
    host: '127.0.0.1',
    port: 0,
    log: silentLog,
  });
  server.setReady(true);
  const address = `127.0.0.1:${server.port}`;
  const client = createClient(IngestService, { address, deadlineMs: 60_000 });
  return {
    client,
    sql: db.sql,
    address,
    queue,
    async close() {
      client.close();
      await server.shutdown();
      await queue.obliterate({ force: true });
      await queue.close();
      await redis.quit();
      await db.close();
    },
  };
}

/** An async iterable that yields the given items, then waits for `until` before ending. */
export async function* feed<T>(items: T[], until?: Promise<unknown>): AsyncIterable<T> {
  for (const item of items) yield item;
  if (until) await until;
}
