import { Pool, type PoolClient, type PoolConfig } from 'pg';
import { InvalidArgumentError, StorageUnavailableError, sqlState } from './errors.js';
import type { QueryResult, Sql } from './sql-types.js';
import { assertOutsideTransaction, type Runner, runTransactionBody } from './transaction.js';

export interface PostgresOptions {
  url: string;
  schema: string;
  maxConnections?: number | undefined;
  onError?: ((err: Error) => void) | undefined;
}

export async function openPostgres(options: PostgresOptions): Promise<Sql> {
  const pool = new Pool(poolConfig(options));
  // Without a listener an idle connection dropped by the server would crash the process.
  pool.on('error', (err) => options.onError?.(err));
  try {
    await ensureSchema(pool, options.schema);
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw toStorageError(err);
  }
  return new PostgresSql(pool, options.schema);
}

function poolConfig({ url, schema, maxConnections }: PostgresOptions): PoolConfig {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidArgumentError(
      'database url: must be a postgres:// URL',
      'url',
      'must be a postgres:// URL',
    );
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new InvalidArgumentError(
      `database url: must be a postgres:// URL, got ${parsed.protocol}//...`,
      'url',
      'must be a postgres:// URL',
    );
  }
  // search_path goes in the startup packet so that every pooled connection has it before
  // its first query. pg lets `options` in the URL replace ours, so merge the two.
  let connectionString = url;
  const urlOptions = parsed.searchParams.get('options');
  if (urlOptions !== null) {
    parsed.searchParams.delete('options');
    connectionString = parsed.toString();
  }
  return {
    connectionString,
    options: [urlOptions, `-c search_path=${schema}`].filter(Boolean).join(' '),
    fallback_application_name: `ballast-${schema}`,
    // pg waits forever for a free connection by default; a request should fail instead.
    connectionTimeoutMillis: 10_000,
    ...(maxConnections === undefined ? {} : { max: maxConnections }),
  };
}

async function ensureSchema(pool: Pool, schema: string): Promise<void> {
  // Checked first because CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even when
  // the schema exists, and a service may run as a role that only owns its schema.
  const found = await pool.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
  if (found.rowCount) return;
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    // Two replicas starting together would otherwise race on pg_namespace's unique index.
    await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`ballast.schema:${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    await client.query('COMMIT');
    client.release();
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release(true);
    throw err;
  }
}

class PostgresSql implements Sql {
  readonly kind = 'postgres';
  private ended: Promise<void> | undefined;

  constructor(
    private readonly pool: Pool,
    readonly schema: string,
  ) {}

  async query<R = Record<string, unknown>>(
    text: string,
    params?: readonly unknown[],
  ): Promise<QueryResult<R>> {
    assertOutsideTransaction(this.pool);
    return runQuery<R>(this.pool, text, params);
  }

  async exec(text: string): Promise<void> {
    assertOutsideTransaction(this.pool);
    await runExec(this.pool, text);
  }

  async transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
    assertOutsideTransaction(this.pool);
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw toStorageError(err);
    }
    let broken: unknown;
    // pg's pool listens for errors only on idle clients. A checked-out client whose
    // connection drops emits 'error' with no listener, which would crash the process; the
    // statement in flight fails on its own, so here the error only marks the client broken.
    const onLost = (err: Error) => {
      broken = err;
    };
    client.on('error', onLost);
    try {
      await runExec(client, 'BEGIN');
      const runner: Runner = {
        query: (text, params) => runQuery(client, text, params),
        exec: (text) => runExec(client, text),
      };
      const result = await runTransactionBody(this.kind, this.schema, this.pool, runner, fn);
      await runExec(client, 'COMMIT');
      return result;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch (rollbackErr) {
        // The connection's state is unknown: destroy it rather than pool it.
        broken = rollbackErr;
      }
      throw err;
    } finally {
      client.off('error', onLost);
      client.release(broken instanceof Error ? broken : broken !== undefined);
    }
  }

  close(): Promise<void> {
    this.ended ??= this.pool.end();
    return this.ended;
  }
}

type Queryable = Pick<Pool, 'query'>;

async function runQuery<R>(
  db: Queryable,
  text: string,
  params?: readonly unknown[],
): Promise<QueryResult<R>> {
  try {
    const result = await db.query(text, params as unknown[] | undefined);
    return { rows: result.rows as R[], rowCount: result.rowCount ?? 0 };
  } catch (err) {
    throw toStorageError(err);
  }
}

async function runExec(db: Queryable, text: string): Promise<void> {
  try {
    // No parameters: pg uses the simple query protocol, which allows several statements.
    await db.query(text);
  } catch (err) {
    throw toStorageError(err);
  }
}

// Failures to *get* a connection: nothing ran, so retrying is safe.
const CONNECT_ERRNOS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
const CONNECT_SQLSTATES = new Set([
  '08001', // sqlclient_unable_to_establish_sqlconnection
  '08004', // sqlserver_rejected_establishment_of_sqlconnection
  '57P03', // cannot_connect_now (starting up, shutting down, in recovery)
  '53300', // too_many_connections
]);
// A connection lost mid-operation (the server restarted, a pooler or proxy dropped it). The
// database is unavailable, not the service broken, so it is UNAVAILABLE too, not INTERNAL;
// but the statement may or may not have committed, which the message says. gRPC clients
// retry UNAVAILABLE only for idempotent methods, and Ballast's writes are idempotent by key.
const LOST_ERRNOS = new Set(['ECONNRESET', 'EPIPE']);
const LOST_SQLSTATES = new Set([
  '57P01', // admin_shutdown (also pg_terminate_backend)
  '57P02', // crash_shutdown
  '08003', // connection_does_not_exist
  '08006', // connection_failure
]);

function toStorageError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const code = (err as { code?: unknown }).code;
  const state = sqlState(err);
  if (
    (typeof code === 'string' && CONNECT_ERRNOS.has(code)) ||
    (state !== undefined && CONNECT_SQLSTATES.has(state)) ||
    err.message.includes('timeout exceeded when trying to connect')
  ) {
    return new StorageUnavailableError(`postgres unavailable: ${err.message}`, { cause: err });
  }
  if (
    (typeof code === 'string' && LOST_ERRNOS.has(code)) ||
    (state !== undefined && LOST_SQLSTATES.has(state)) ||
    err.message.startsWith('Connection terminated')
  ) {
    return new StorageUnavailableError(
      `postgres connection lost during the operation, which may or may not have been applied: ${err.message}`,
      { cause: err },
    );
  }
  return err;
}
