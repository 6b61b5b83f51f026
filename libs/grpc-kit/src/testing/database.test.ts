import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createTestDatabase } from './database.js';

const databases = () =>
  execFileSync(
    'psql',
    ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'test', '-tAc', 'select datname from pg_database'],
    {
      encoding: 'utf8',
    },
  );

describe('createTestDatabase', () => {
  it('makes a database and a data directory of its own, and close() removes both', async () => {
    const db = await createTestDatabase('kit-db');
    expect(db.name).toMatch(/^t_kit_db_[0-9a-f]{8}$/);
    expect(db.env).toEqual({ BALLAST_DATA_DIR: db.dataDir, BALLAST_DATABASE_URL: db.url });
    expect(databases()).toContain(db.name);
    expect(existsSync(db.dataDir)).toBe(true);
    await db.close();
    expect(databases()).not.toContain(db.name);
    expect(existsSync(db.dataDir)).toBe(false);
  });

  it('with postgres: false, only the data directory (the service keeps PGlite there)', async () => {
    const db = await createTestDatabase('kit-pglite', { postgres: false });
    expect(db.url).toBeUndefined();
    expect(db.env.BALLAST_DATABASE_URL).toBe('');
    await db.close();
    expect(existsSync(db.dataDir)).toBe(false);
  });
});
