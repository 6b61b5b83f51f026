import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError, isUniqueViolation, StorageUnavailableError } from './errors.js';
import { openDatabase, type Sql } from './sql.js';
import { BACKENDS, TEST_DATABASE_URL, TestBackend, uniqueSchema } from './test-backends.js';

describe.each(BACKENDS)('Sql on %s', (kind) => {
  const backend = new TestBackend(kind);
  const schema = uniqueSchema('sql');
  let sql: Sql;

  beforeAll(async () => {
    sql = await backend.open(schema);
    await sql.exec(`
      CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
      CREATE TABLE kinds (big int8, amount numeric, data bytea, at timestamptz, doc jsonb, flag boolean);
    `);
  });

  afterAll(() => backend.cleanup());

  it('reports its kind and schema, and the schema is the search_path', async () => {
    expect(sql.kind).toBe(kind);
    expect(sql.schema).toBe(schema);
    const { rows } = await sql.query<{ schema: string }>('SELECT current_schema() AS schema');
    expect(rows).toEqual([{ schema }]);
  });

  it('runs queries with $n parameters and reports row counts', async () => {
    const inserted = await sql.query('INSERT INTO items (id, name) VALUES ($1, $2), ($3, $4)', [
      1,
      'one',
      2,
      'two',
    ]);
    expect(inserted.rowCount).toBe(2);
    const { rows, rowCount } = await sql.query<{ id: number; name: string }>(
      'SELECT id, name FROM items WHERE id >= $1 ORDER BY id',
      [1],
    );
    expect(rows).toEqual([
      { id: 1, name: 'one' },
      { id: 2, name: 'two' },
    ]);
    expect(rowCount).toBe(2);
    const updated = await sql.query('UPDATE items SET name = upper(name) WHERE id = $1', [2]);
    expect(updated.rowCount).toBe(1);
    const created = await sql.query('CREATE TABLE scratch (x int)');
    expect(created.rowCount).toBe(0);
  });

  it('returns the same JS types as the other backend', async () => {
    const at = new Date('2024-03-01T12:34:56.789Z');
    await sql.query('INSERT INTO kinds VALUES ($1, $2, $3, $4, $5, $6)', [
      '9007199254740993',
      '12.50',
      Buffer.from([0, 1, 255]),
      at,
      { warehouse: 'w1', skus: [1, 2] },
      true,
    ]);
    const { rows } = await sql.query('SELECT *, count(*) OVER () AS n FROM kinds');
    expect(rows).toEqual([
      {
        big: '9007199254740993',
        amount: '12.50',
        data: Buffer.from([0, 1, 255]),
        at,
        doc: { warehouse: 'w1', skus: [1, 2] },
        flag: true,
        n: '1',
      },
    ]);
    expect(Buffer.isBuffer(rows[0]?.data)).toBe(true);
  });

  it('commits a transaction and returns its result', async () => {
    const result = await sql.transaction(async (tx) => {
      await tx.query('INSERT INTO items (id, name) VALUES ($1, $2)', [10, 'ten']);
      const { rows } = await tx.query<{ name: string }>('SELECT name FROM items WHERE id = 10');
      return rows[0]?.name;
    });
    expect(result).toBe('ten');
    expect((await sql.query('SELECT 1 FROM items WHERE id = 10')).rowCount).toBe(1);
  });

  it('rolls back everything when the callback throws, and rethrows the same error', async () => {
    const boom = new Error('boom');
    await expect(
      sql.transaction(async (tx) => {
        await tx.query('INSERT INTO items (id, name) VALUES (20, $1)', ['twenty']);
        await tx.query('INSERT INTO items (id, name) VALUES (21, $1)', ['twenty-one']);
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect((await sql.query('SELECT 1 FROM items WHERE id IN (20, 21)')).rowCount).toBe(0);
  });

  it('rolls back when a statement fails, with a recognisable SQL error', async () => {
    const err = await sql
      .transaction(async (tx) => {
        await tx.query('INSERT INTO items (id, name) VALUES (30, $1)', ['thirty']);
        await tx.query('INSERT INTO items (id, name) VALUES (1, $1)', ['duplicate']);
      })
      .catch((e: unknown) => e);
    expect(isUniqueViolation(err)).toBe(true);
    expect((await sql.query('SELECT 1 FROM items WHERE id = 30')).rowCount).toBe(0);
    // The connection (or PGlite session) is usable afterwards.
    expect((await sql.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('nests transactions as savepoints', async () => {
    await sql.transaction(async (tx) => {
      await tx.query('INSERT INTO items (id, name) VALUES (40, $1)', ['kept']);
      await expect(
        tx.transaction(async (inner) => {
          await inner.query('INSERT INTO items (id, name) VALUES (41, $1)', ['undone']);
          throw new Error('inner failure');
        }),
      ).rejects.toThrow('inner failure');
      await tx.transaction(async (inner) => {
        await inner.query('INSERT INTO items (id, name) VALUES (42, $1)', ['nested commit']);
      });
    });
    const { rows } = await sql.query<{ id: number }>(
      'SELECT id FROM items WHERE id BETWEEN 40 AND 49 ORDER BY id',
    );
    expect(rows.map((r) => r.id)).toEqual([40, 42]);
  });

  it('refuses the outer handle inside its own transaction instead of deadlocking', async () => {
    await expect(
      sql.transaction(async () => {
        await sql.query('SELECT 1');
      }),
    ).rejects.toThrow(/inside its own transaction/);
  });

  it('refuses a transaction handle after the transaction ended, and refuses to close it', async () => {
    let leaked: Sql | undefined;
    await sql.transaction(async (tx) => {
      leaked = tx;
      await expect(tx.close()).rejects.toThrow(/cannot be closed/);
    });
    await expect(leaked?.query('SELECT 1')).rejects.toThrow(/after its transaction/);
  });

  it('keeps each schema to itself', async () => {
    const otherSchema = uniqueSchema('other');
    const other = await backend.open(otherSchema);
    await other.exec('CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)');
    await other.query('INSERT INTO items VALUES (1, $1)', ['other one']);
    expect((await other.query('SELECT name FROM items')).rows).toEqual([{ name: 'other one' }]);
    const mine = await sql.query('SELECT name FROM items WHERE id = 1');
    expect(mine.rows).toEqual([{ name: 'one' }]);
    await expect(other.query('SELECT * FROM kinds')).rejects.toThrow(/kinds/);

    // The data outlives the handle.
    await other.close();
    await other.close();
    const reopened = await backend.open(otherSchema);
    expect((await reopened.query('SELECT name FROM items')).rows).toEqual([{ name: 'other one' }]);
  });

  it('shares one database between handles on the same schema until the last closes', async () => {
    const [a, b] = await Promise.all([backend.open(schema), backend.open(schema)]);
    await a.query('INSERT INTO items VALUES (50, $1)', ['from a']);
    expect((await b.query('SELECT name FROM items WHERE id = 50')).rows).toEqual([{ name: 'from a' }]);
    await a.close();
    expect((await b.query('SELECT name FROM items WHERE id = 50')).rowCount).toBe(1);
    await b.close();
    expect((await sql.query('SELECT name FROM items WHERE id = 50')).rowCount).toBe(1);
  });
});

describe('openDatabase', () => {
  it.each(['', 'Models', 'a-b', 'a;drop table x', '1abc', 'pg_catalog', 'x'.repeat(64), 'café'])(
    'rejects the schema name %j before touching a database',
    async (schema) => {
      const err = await openDatabase({ url: 'postgres://nobody@127.0.0.1:1/none', schema }).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect(err).toMatchObject({ code: 'invalid_argument', field: 'schema' });
    },
  );

  it('rejects a database url that is not postgres://', async () => {
    const err = await openDatabase({ url: 'mysql://root@127.0.0.1/x', schema: 'ok' }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toMatch(/postgres:\/\//);
  });

  it('reports a Postgres it cannot reach as unavailable', async () => {
    const err = await openDatabase({
      url: 'postgres://postgres@127.0.0.1:1/test',
      schema: 'unreachable',
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageUnavailableError);
    expect(err).toMatchObject({ code: 'unavailable' });
  });

  it('reports a connection lost mid-query as unavailable, and the next query reconnects', async () => {
    const backend = new TestBackend('postgres');
    const sql = await backend.open(uniqueSchema('lost'));
    try {
      // The server ends this very connection while the statement runs.
      const err = await sql.query('SELECT pg_terminate_backend(pg_backend_pid())').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageUnavailableError);
      expect(err).toMatchObject({ code: 'unavailable' });
      expect((err as Error).message).toMatch(/may or may not have been applied/);
      expect((await sql.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one).toBe(1);
    } finally {
      await backend.cleanup();
    }
  });

  it('reports a transaction whose connection is lost as unavailable, with nothing committed', async () => {
    const backend = new TestBackend('postgres');
    const sql = await backend.open(uniqueSchema('losttx'));
    try {
      await sql.exec('CREATE TABLE marks (id int PRIMARY KEY)');
      const err = await sql
        .transaction(async (tx) => {
          await tx.query('INSERT INTO marks VALUES (1)');
          await tx.query('SELECT pg_terminate_backend(pg_backend_pid())');
        })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageUnavailableError);
      expect((await sql.query('SELECT id FROM marks')).rowCount).toBe(0);
    } finally {
      await backend.cleanup();
    }
  });

  it('keeps search_path alongside options given in the url', async () => {
    const backend = new TestBackend('postgres');
    const schema = uniqueSchema('opts');
    backend.track(schema);
    try {
      const url = new URL(TEST_DATABASE_URL);
      url.searchParams.set('options', '-c statement_timeout=4321');
      const sql = await openDatabase({ url: url.toString(), schema });
      try {
        const timeout = await sql.query<{ statement_timeout: string }>('SHOW statement_timeout');
        expect(timeout.rows[0]?.statement_timeout).toBe('4321ms');
        const current = await sql.query<{ schema: string }>('SELECT current_schema() AS schema');
        expect(current.rows[0]?.schema).toBe(schema);
      } finally {
        await sql.close();
      }
    } finally {
      await backend.cleanup();
    }
  });
});
