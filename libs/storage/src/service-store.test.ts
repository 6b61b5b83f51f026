import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { openServiceStore } from './service-store.js';
import { TEST_DATABASE_URL, uniqueSchema } from './test-backends.js';

const migrations = [{ id: '0001_notes', sql: 'create table notes (id int primary key, body text not null)' }];

describe('openServiceStore', () => {
  const schema = uniqueSchema('svc');
  let dataDir: string | undefined;

  afterAll(async () => {
    const pool = new Pool({ connectionString: TEST_DATABASE_URL });
    await pool.query(`drop schema if exists ${schema} cascade`);
    await pool.end();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('does not touch the database until used, and reports it unavailable while down', async () => {
    const store = openServiceStore({
      url: 'postgres://postgres@127.0.0.1:1/test',
      dataDir: '.',
      schema,
      migrations,
    });
    expect(() => store.sql).toThrow(/not open yet/);
    const err = await store.ping().catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('unavailable');
    await store.close();
  });

  it('migrates and serves queries on Postgres once it answers', async () => {
    const store = openServiceStore({ url: TEST_DATABASE_URL, dataDir: '.', schema, migrations });
    try {
      await store.ping();
      expect(await store.migrate()).toEqual(['0001_notes']);
      expect(await store.migrate()).toEqual([]);
      await store.sql.query('insert into notes (id, body) values ($1, $2)', [1, 'kept']);
      expect((await store.sql.query<{ body: string }>('select body from notes')).rows).toEqual([
        { body: 'kept' },
      ]);
    } finally {
      await store.close();
    }
  });

  it('uses embedded PGlite under the data dir when no URL is set', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'ballast-store-'));
    const store = openServiceStore({ dataDir, schema: 'registry', migrations });
    try {
      expect(await store.migrate()).toEqual(['0001_notes']);
      expect(store.sql.kind).toBe('pglite');
    } finally {
      await store.close();
    }
  });
});
