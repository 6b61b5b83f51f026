import { createHash, randomBytes } from 'node:crypto';
import { BlobTooLargeError, migrate, openDatabase, type Sql } from '@ballast/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrations } from '../migrations.js';
import { TEST_DATABASE_URL } from '../test-registry.js';
import { readAll } from './blob-store.js';
import { BlobCorruptError } from './content-check.js';
import { PostgresBlobStore, ROW_BYTES } from './postgres-blob-store.js';

// What the Postgres backend does beyond the contract (contract.test.ts): it checks the
// sha256 of what it reads back, holds to its size limit, deletes inside the caller's
// transaction, and sweeps the parts of puts that died. On the shared Postgres.

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

describe('PostgresBlobStore', () => {
  const schema = `t_pgblobs_${randomBytes(4).toString('hex')}`;
  let sql: Sql;
  let blobs: PostgresBlobStore;

  beforeAll(async () => {
    sql = await openDatabase({ url: TEST_DATABASE_URL, schema });
    await migrate(sql, migrations);
    blobs = new PostgresBlobStore(() => sql, 4 * ROW_BYTES);
  });
  afterAll(async () => {
    await sql.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await sql.close();
  });

  it('names a blob whose stored bytes were changed as corrupt after streaming them, never as whole', async () => {
    const data = randomBytes(2 * ROW_BYTES + 10);
    const { sha256: digest } = await blobs.put(data);
    await sql.query(
      `UPDATE blob_parts SET data = set_byte(data, 5, (get_byte(data, 5) + 1) % 256)
       WHERE part_id = (SELECT part_id FROM blobs WHERE sha256 = $1) AND seq = 1`,
      [digest],
    );
    const err = await readAll(await blobs.get(digest)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BlobCorruptError);
    expect((err as Error).message).toContain(`blob sha256:${digest} is corrupt in the database`);
    await sql.query(
      `DELETE FROM blob_parts WHERE part_id = (SELECT part_id FROM blobs WHERE sha256 = $1) AND seq = 2`,
      [digest],
    );
    await expect(readAll(await blobs.get(digest))).rejects.toThrow(/bytes read, \d+ stored/);
    await blobs.delete(digest);
  });

  it('refuses a blob over its own limit with RESOURCE_EXHAUSTED, whatever the caller allows', async () => {
    const err = await blobs
      .put(Buffer.alloc(4 * ROW_BYTES + 1), { maxBytes: 10 * ROW_BYTES })
      .catch((e) => e);
    expect(err).toBeInstanceOf(BlobTooLargeError);
    expect(err).toMatchObject({ code: 'resource_exhausted', maxBytes: 4 * ROW_BYTES });
    const { rows } = await sql.query(`SELECT 1 FROM blob_parts`);
    expect(rows).toEqual([]);
  });

  it('deletes inside the caller transaction: a rollback keeps the blob', async () => {
    const data = randomBytes(1000);
    const { sha256: digest } = await blobs.put(data);
    await sql
      .transaction(async (tx) => {
        expect(await blobs.delete(digest, { tx })).toBe(true);
        throw new Error('roll back');
      })
      .catch(() => undefined);
    expect(await blobs.read(digest)).toEqual(data);
    await sql.transaction(async (tx) => {
      await blobs.delete(digest, { tx });
    });
    expect(await blobs.has(digest)).toBe(false);
  });

  it('sweeps parts nothing points at once idle long enough, and never a stored blob', async () => {
    const kept = await blobs.put(randomBytes(ROW_BYTES + 1));
    await sql.query(
      `INSERT INTO blob_parts (part_id, seq, data, created_at) VALUES ('dead', 0, '\\x0102', now() - interval '2 hours')`,
    );
    await sql.query(`INSERT INTO blob_parts (part_id, seq, data) VALUES ('in-flight', 0, '\\x03')`);
    expect(await blobs.sweepAbandonedParts()).toEqual({ rows: 1, bytes: 2 });
    const { rows } = await sql.query<{ part_id: string }>(
      `SELECT DISTINCT part_id FROM blob_parts ORDER BY 1`,
    );
    const keptPart = (await sql.query<{ part_id: string }>(`SELECT part_id FROM blobs`)).rows[0]?.part_id;
    expect(rows.map((r) => r.part_id).sort()).toEqual(['in-flight', keptPart].sort());
    expect(sha256(await blobs.read(kept.sha256))).toBe(kept.sha256);
  });
});
