import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** The Postgres the tests share (a database on it is the admin connection for createTestDatabase). */
export const TEST_DATABASE_URL =
  process.env.BALLAST_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface TestDatabase {
  /** The Postgres database's name; undefined for PGlite. */
  readonly name: string | undefined;
  /** postgres:// URL of the database; undefined for PGlite (which lives in dataDir). */
  readonly url: string | undefined;
  /** A temporary directory of its own (BALLAST_DATA_DIR). */
  readonly dataDir: string;
  /** BALLAST_DATA_DIR and BALLAST_DATABASE_URL ('' for PGlite) for a service process's env. */
  readonly env: Readonly<Record<string, string>>;
  /** Drops the database (closing what is still connected) and removes dataDir. */
  close(): Promise<void>;
}

/** One on Postgres: name and url are set. */
export interface PostgresTestDatabase extends TestDatabase {
  readonly name: string;
  readonly url: string;
}

const run = promisify(execFile);

function psql(sql: string) {
  const admin = new URL(TEST_DATABASE_URL);
  return run('psql', [
    '-h',
    admin.hostname,
    '-p',
    admin.port || '5432',
    '-U',
    decodeURIComponent(admin.username) || 'postgres',
    '-d',
    admin.pathname.slice(1),
    '-c',
    sql,
  ]);
}

/**
 * Storage of a test's own for service processes: a fresh Postgres database on the shared
 * cluster (created with the psql CLI) or, with `postgres: false`, none (the service then
 * keeps PGlite in dataDir), and a temporary data directory. close() removes both.
 */
// The overload without options comes last: ReturnType<typeof createTestDatabase> is PostgresTestDatabase.
export function createTestDatabase(label: string, options: { postgres: boolean }): Promise<TestDatabase>;
export function createTestDatabase(
  label: string,
  options?: { postgres?: true },
): Promise<PostgresTestDatabase>;
export async function createTestDatabase(
  label: string,
  options: { postgres?: boolean } = {},
): Promise<TestDatabase> {
  const dataDir = await mkdtemp(join(tmpdir(), `ballast-${label}-`));
  let name: string | undefined;
  let url: string | undefined;
  if (options.postgres !== false) {
    name = `t_${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
    await psql(`CREATE DATABASE ${name}`);
    const u = new URL(TEST_DATABASE_URL);
    u.pathname = `/${name}`;
    url = u.toString();
  }
  return {
    name,
    url,
    dataDir,
    env: { BALLAST_DATA_DIR: dataDir, BALLAST_DATABASE_URL: url ?? '' },
    async close() {
      if (name) await psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
