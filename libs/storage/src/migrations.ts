import { createHash } from 'node:crypto';
import { MigrationError } from './errors.js';
import type { Sql } from './sql.js';

export interface Migration {
  /** Sorts in the order migrations apply, e.g. `0001_create_models`. */
  id: string;
  /**
   * One or more statements, run inside a transaction (so no BEGIN/COMMIT of its own, and
   * nothing that refuses a transaction such as CREATE INDEX CONCURRENTLY).
   */
  sql: string;
}

interface AppliedRow {
  id: string;
  sha256: string;
}

const MIGRATION_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * Applies, in order, the migrations not yet recorded in `<schema>.schema_migrations`, each
 * in its own transaction, and returns the ids it applied. Every step holds an advisory lock
 * keyed on the schema, so replicas starting together apply each migration exactly once
 * (on PGlite, whose transactions already exclude each other, the lock costs nothing).
 *
 * Refuses, before applying anything, a migration whose text changed since it was applied
 * and a new migration that sorts before one already applied: either means the database
 * and the code disagree about history, which forward-only migrations cannot repair.
 */
export async function migrate(sql: Sql, migrations: readonly Migration[]): Promise<string[]> {
  checkList(migrations);
  const table = `"${sql.schema}".schema_migrations`;
  const lock = (tx: Sql) =>
    tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`ballast.migrate:${sql.schema}`]);

  const pending = await sql.transaction(async (tx) => {
    await lock(tx);
    await tx.exec(
      `CREATE TABLE IF NOT EXISTS ${table} (
        id text PRIMARY KEY,
        sha256 text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`,
    );
    const { rows } = await tx.query<AppliedRow>(`SELECT id, sha256 FROM ${table}`);
    return checkHistory(migrations, new Map(rows.map((row) => [row.id, row.sha256])));
  });

  const appliedNow: string[] = [];
  for (const migration of pending) {
    const digest = sqlDigest(migration.sql);
    const applied = await sql.transaction(async (tx) => {
      await lock(tx);
      // Another process may have applied it since the check above.
      const { rows } = await tx.query<AppliedRow>(`SELECT id, sha256 FROM ${table} WHERE id = $1`, [
        migration.id,
      ]);
      const existing = rows[0];
      if (existing) {
        if (existing.sha256 !== digest) throw changedError(migration.id);
        return false;
      }
      try {
        await tx.exec(migration.sql);
      } catch (err) {
        throw new MigrationError(
          `migration ${migration.id} failed in schema ${sql.schema}: ${(err as Error).message}`,
          migration.id,
          { cause: err },
        );
      }
      await tx.query(`INSERT INTO ${table} (id, sha256) VALUES ($1, $2)`, [migration.id, digest]);
      return true;
    });
    if (applied) appliedNow.push(migration.id);
  }
  return appliedNow;
}

/** sha256 of a migration's text; CRLF counts as LF so a Windows checkout is not a "change". */
export function sqlDigest(text: string): string {
  return createHash('sha256').update(text.replace(/\r\n/g, '\n')).digest('hex');
}

function checkList(migrations: readonly Migration[]): void {
  let previous: string | undefined;
  for (const { id } of migrations) {
    if (!MIGRATION_ID.test(id)) {
      throw new MigrationError(`migration id ${JSON.stringify(id)} must be [A-Za-z0-9_.-]`, id);
    }
    if (previous !== undefined && id <= previous) {
      throw new MigrationError(
        `migration ids must be unique and in ascending order: ${id} comes after ${previous}`,
        id,
      );
    }
    previous = id;
  }
}

function checkHistory(migrations: readonly Migration[], applied: Map<string, string>): Migration[] {
  const lastApplied = [...applied.keys()].sort().at(-1);
  const pending: Migration[] = [];
  for (const migration of migrations) {
    const digest = applied.get(migration.id);
    if (digest === undefined) {
      if (lastApplied !== undefined && migration.id < lastApplied) {
        throw new MigrationError(
          `migration ${migration.id} is new but sorts before ${lastApplied}, which is already applied; ` +
            'give it an id after the last applied migration',
          migration.id,
        );
      }
      pending.push(migration);
    } else if (digest !== sqlDigest(migration.sql)) {
      throw changedError(migration.id);
    }
  }
  return pending;
}

function changedError(id: string): MigrationError {
  return new MigrationError(
    `migration ${id} was already applied with different SQL; applied migrations are immutable, ` +
      'so restore its original text and put the change in a new migration',
    id,
  );
}
