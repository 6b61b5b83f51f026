import { resolve } from 'node:path';
import { PGlite, type Results, types } from '@electric-sql/pglite';
import { seedFromTemplate } from './pglite-template.js';
import type { QueryResult, Sql } from './sql-types.js';
import { assertOutsideTransaction, type Runner, runTransactionBody } from './transaction.js';

export interface PgliteOptions {
  dataDir: string;
  schema: string;
}

interface Shared {
  db: Promise<PGlite>;
  handles: number;
}

// PGlite is one Postgres backend in this process; two instances on one directory would
// corrupt it, so every handle for a directory shares one instance until the last closes.
const open = new Map<string, Shared>();
const closing = new Map<string, Promise<void>>();

// Match pg's defaults so code behaves the same on both backends.
const parsers = {
  [types.INT8]: (value: string) => value,
  [types.BYTEA]: (value: string) => Buffer.from(value.slice(2), 'hex'),
};

export async function openPglite({ dataDir, schema }: PgliteOptions): Promise<Sql> {
  const dir = resolve(dataDir, 'pglite', schema);
  let shared = open.get(dir);
  if (!shared) {
    const created: Shared = { db: start(dir, schema), handles: 0 };
    created.db.catch(() => {
      if (open.get(dir) === created) open.delete(dir);
    });
    open.set(dir, created);
    shared = created;
  }
  shared.handles++;
  let db: PGlite;
  try {
    db = await shared.db;
  } catch (err) {
    shared.handles--;
    throw err;
  }
  const owner = shared;
  return new PgliteSql(db, schema, () => release(dir, owner, db));
}

async function start(dir: string, schema: string): Promise<PGlite> {
  await closing.get(dir);
  await seedFromTemplate(dir);
  const db = await PGlite.create({ dataDir: dir, parsers });
  try {
    // Session-level, and PGlite has exactly one session, so it holds for every query.
    await db.exec(`CREATE SCHEMA IF NOT EXISTS "${schema}"; SET search_path TO "${schema}";`);
  } catch (err) {
    await db.close().catch(() => undefined);
    throw err;
  }
  return db;
}

async function release(dir: string, shared: Shared, db: PGlite): Promise<void> {
  shared.handles--;
  if (shared.handles > 0 || open.get(dir) !== shared) return;
  open.delete(dir);
  const done = db.close();
  closing.set(dir, done);
  try {
    await done;
  } finally {
    if (closing.get(dir) === done) closing.delete(dir);
  }
}

class PgliteSql implements Sql {
  readonly kind = 'pglite';
  private closed: Promise<void> | undefined;

  constructor(
    private readonly db: PGlite,
    readonly schema: string,
    private readonly onClose: () => Promise<void>,
  ) {}

  async query<R = Record<string, unknown>>(
    text: string,
    params?: readonly unknown[],
  ): Promise<QueryResult<R>> {
    assertOutsideTransaction(this.db);
    return toResult(await this.db.query<R>(text, params as unknown[] | undefined));
  }

  async exec(text: string): Promise<void> {
    assertOutsideTransaction(this.db);
    await this.db.exec(text);
  }

  async transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
    assertOutsideTransaction(this.db);
    // PGlite's transaction holds its lock for the whole callback (so nothing else interleaves)
    // and rolls back when the callback throws.
    return this.db.transaction(async (tx) => {
      const runner: Runner = {
        query: async <R>(text: string, params?: readonly unknown[]) =>
          toResult(await tx.query<R>(text, params as unknown[] | undefined)),
        exec: async (text) => {
          await tx.exec(text);
        },
      };
      return runTransactionBody(this.kind, this.schema, this.db, runner, fn);
    });
  }

  close(): Promise<void> {
    this.closed ??= this.onClose();
    return this.closed;
  }
}

function toResult<R>(result: Results<R>): QueryResult<R> {
  return { rows: result.rows, rowCount: result.rowCount ?? result.affectedRows ?? 0 };
}
