import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MigrationError } from './errors.js';
import { type Migration, migrate, sqlDigest } from './migrations.js';
import type { Sql } from './sql.js';
import { BACKENDS, TestBackend, uniqueSchema } from './test-backends.js';

// Deliberately not idempotent (no IF NOT EXISTS): applying one twice would fail loudly.
const m1: Migration = {
  id: '0001_create_models',
  sql: 'CREATE TABLE models (\n  name text PRIMARY KEY,\n  team text NOT NULL\n);\nCREATE INDEX models_team ON models (team);',
};
const m2: Migration = {
  id: '0002_create_versions',
  sql: 'CREATE TABLE versions (model text NOT NULL REFERENCES models (name), version int NOT NULL)',
};
const m3: Migration = { id: '0003_seed', sql: "INSERT INTO models VALUES ('demand', 'forecasting')" };
const m4: Migration = { id: '0004_create_aliases', sql: 'CREATE TABLE aliases (alias text PRIMARY KEY)' };

async function tableExists(sql: Sql, table: string): Promise<boolean> {
  const { rows } = await sql.query<{ found: boolean }>('SELECT to_regclass($1) IS NOT NULL AS found', [
    `"${sql.schema}".${table}`,
  ]);
  return rows[0]?.found === true;
}

async function recorded(sql: Sql): Promise<{ id: string; sha256: string }[]> {
  const { rows } = await sql.query<{ id: string; sha256: string }>(
    'SELECT id, sha256 FROM schema_migrations ORDER BY id',
  );
  return rows;
}

describe.each(BACKENDS)('migrate on %s', (kind) => {
  const backend = new TestBackend(kind);
  let sql: Sql;

  beforeAll(async () => {
    sql = await backend.open(uniqueSchema('mig'));
  });

  afterAll(() => backend.cleanup());

  it('applies pending migrations in order and records them with their digest', async () => {
    expect(await migrate(sql, [m1, m2])).toEqual([m1.id, m2.id]);
    expect(await tableExists(sql, 'models')).toBe(true);
    expect(await tableExists(sql, 'versions')).toBe(true);
    expect(await recorded(sql)).toEqual([
      { id: m1.id, sha256: sqlDigest(m1.sql) },
      { id: m2.id, sha256: sqlDigest(m2.sql) },
    ]);
  });

  it('is a no-op when run again', async () => {
    expect(await migrate(sql, [m1, m2])).toEqual([]);
    expect(await recorded(sql)).toHaveLength(2);
  });

  it('applies only the migrations added since', async () => {
    expect(await migrate(sql, [m1, m2, m3])).toEqual([m3.id]);
    expect((await sql.query('SELECT name FROM models')).rows).toEqual([{ name: 'demand' }]);
  });

  it('refuses a migration whose SQL changed since it was applied, naming it, and applies nothing', async () => {
    const changed = { ...m2, sql: `${m2.sql.replace('int', 'bigint')}` };
    const err = await migrate(sql, [m1, changed, m3, m4]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationError);
    expect(err).toMatchObject({ code: 'failed_precondition', migrationId: m2.id });
    expect((err as Error).message).toContain(m2.id);
    expect(await tableExists(sql, 'aliases')).toBe(false);
    expect(await recorded(sql)).toHaveLength(3);
  });

  it('does not count CRLF line endings as a change', async () => {
    const crlf = { ...m1, sql: m1.sql.replace(/\n/g, '\r\n') };
    expect(await migrate(sql, [crlf, m2, m3])).toEqual([]);
  });

  it('refuses a new migration that sorts before one already applied', async () => {
    const late: Migration = { id: '0002_5_late', sql: 'CREATE TABLE late (x int)' };
    const err = await migrate(sql, [m1, m2, late, m3]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationError);
    expect(err).toMatchObject({ migrationId: late.id });
    expect(await tableExists(sql, 'late')).toBe(false);
  });

  it('refuses a list that is out of order or has duplicate ids', async () => {
    await expect(migrate(sql, [m2, m1])).rejects.toThrow(/ascending order/);
    await expect(migrate(sql, [m1, m1])).rejects.toThrow(/unique/);
    await expect(migrate(sql, [{ id: '../x', sql: 'SELECT 1' }])).rejects.toBeInstanceOf(MigrationError);
  });

  it('rolls back a failing migration completely and leaves it unrecorded', async () => {
    const failing: Migration = {
      id: '0004_create_aliases',
      sql: 'CREATE TABLE aliases (alias text); SELECT 1/0',
    };
    const err = await migrate(sql, [m1, m2, m3, failing]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationError);
    expect(err).toMatchObject({ migrationId: failing.id });
    expect((err as Error).message).toMatch(/division by zero/);
    expect(await tableExists(sql, 'aliases')).toBe(false);
    expect(await recorded(sql)).toHaveLength(3);

    expect(await migrate(sql, [m1, m2, m3, m4])).toEqual([m4.id]);
    expect(await tableExists(sql, 'aliases')).toBe(true);
  });

  it('applies each migration exactly once when two handles migrate at the same time', async () => {
    // Two handles as two replicas would have them: on Postgres two pools, on PGlite two
    // handles on one data directory.
    const schema = uniqueSchema('race');
    const [a, b] = await Promise.all([backend.open(schema), backend.open(schema)]);
    const migrations: Migration[] = [
      { id: '0001_log', sql: 'CREATE TABLE log (id text NOT NULL)' },
      ...['0002', '0003', '0004', '0005', '0006'].map((id) => ({
        id: `${id}_step`,
        sql: `CREATE TABLE t_${id} (x int); INSERT INTO log VALUES ('${id}')`,
      })),
    ];
    const [fromA, fromB] = await Promise.all([migrate(a, migrations), migrate(b, migrations)]);
    expect([...fromA, ...fromB].sort()).toEqual(migrations.map((m) => m.id));
    const { rows } = await a.query<{ id: string }>('SELECT id FROM log ORDER BY id');
    expect(rows.map((r) => r.id)).toEqual(['0002', '0003', '0004', '0005', '0006']);
    expect(await recorded(b)).toHaveLength(migrations.length);
    expect(await migrate(b, migrations)).toEqual([]);
  });
});
