import { randomUUID } from 'node:crypto';
import {
  type BlobInfo,
  BlobNotFoundError,
  type BlobSource,
  type PutOptions,
  type Sql,
} from '@ballast/storage';
import type { ArtifactBlobs } from './blob-store.js';
import { rechunk } from './blob-store.js';
import { assertDigest, ContentCheck, verifiedRead } from './content-check.js';

/**
 * Blobs in the registry's own PostgreSQL database, so that replicas share them with nothing
 * but the database (tables from migration 0005_blob_store). The store module of the blob
 * tables: all their SQL is here.
 *
 * A blob is a row of `blobs` (sha256, size, the id of its parts) and its bytes are rows of
 * `blob_parts` of ROW_BYTES each. A put streams: each full row is inserted as it fills, under
 * a fresh part id nothing points at, so a reader can never see it; at the end the sha256 is
 * checked and, in one transaction, the `blobs` row is written if no blob of that sha256 is
 * there yet (else the new parts go: the content is stored once). A put that fails deletes
 * its parts; parts left by a killed process are swept at start (sweepAbandonedParts).
 * Reads fetch READ_BATCH rows per query and check the sha256 after the last byte.
 *
 * Limit: one blob holds at most `maxBlobBytes` (DEFAULT_MAX_BLOB_BYTES, 256 MiB): every byte
 * here is also in the database's WAL, backups and replicas, and read back through the
 * database's connections. Larger models belong in the S3 backend.
 */

/** 256 KiB per row: well under Postgres's 1 GB field limit, TOAST-compressed on its own. */
export const ROW_BYTES = 256 * 1024;
const READ_BATCH = 4;
export const DEFAULT_MAX_BLOB_BYTES = 256 * 1024 * 1024;
/** Parts idle this long and pointed at by no blob belong to a put that died (uploads have deadlines far shorter). */
export const ABANDONED_PARTS_AFTER_MS = 60 * 60 * 1000;

export class PostgresBlobStore implements ArtifactBlobs {
  readonly location = 'postgres';

  constructor(
    private readonly sql: () => Sql,
    readonly maxBlobBytes = DEFAULT_MAX_BLOB_BYTES,
  ) {}

  async has(sha256: string, options: { tx?: Sql | undefined } = {}): Promise<boolean> {
    assertDigest(sha256);
    const { rows } = await (options.tx ?? this.sql()).query(`SELECT 1 FROM blobs WHERE sha256 = $1`, [
      sha256,
    ]);
    return rows.length > 0;
  }

  async put(data: BlobSource, options: PutOptions = {}): Promise<BlobInfo> {
    const check = new ContentCheck(options, this.maxBlobBytes);
    const partId = randomUUID();
    const sql = this.sql();
    let rows = 0;
    let committed = false;
    try {
      for await (const row of rechunk(check.pass(data), ROW_BYTES)) {
        await sql.query(`INSERT INTO blob_parts (part_id, seq, data) VALUES ($1, $2, $3)`, [
          partId,
          rows,
          row,
        ]);
        rows++;
      }
      const sha256 = check.finish();
      await sql.transaction(async (tx) => {
        // The count guards against parts swept from under a put stalled past the sweep's age:
        // a blob row is only ever written over all of its parts.
        const { rowCount } = await tx.query(
          `INSERT INTO blobs (sha256, part_id, size, parts)
           SELECT $1, $2, $3::bigint, $4::integer WHERE (SELECT count(*) FROM blob_parts WHERE part_id = $2) = $4::integer
           ON CONFLICT (sha256) DO NOTHING`,
          [sha256, partId, check.size, rows],
        );
        if (rowCount === 0) {
          const present = await tx.query(`SELECT 1 FROM blobs WHERE sha256 = $1`, [sha256]);
          if (present.rows.length === 0)
            throw new Error(`the parts of this upload of sha256:${sha256} were removed before it finished`);
          await tx.query(`DELETE FROM blob_parts WHERE part_id = $1`, [partId]);
        }
      });
      committed = true;
      return { sha256, size: check.size };
    } finally {
      if (!committed && rows > 0)
        await sql.query(`DELETE FROM blob_parts WHERE part_id = $1`, [partId]).catch(() => undefined);
    }
  }

  async get(sha256: string, options: { chunkBytes?: number } = {}): Promise<AsyncIterable<Uint8Array>> {
    const blob = await this.find(sha256);
    const parts = this.parts(blob.partId, blob.parts);
    const verified = verifiedRead(parts, sha256, 'the database', blob.size);
    return rechunk(verified, options.chunkBytes ?? 64 * 1024);
  }

  async read(sha256: string): Promise<Buffer> {
    const parts: Uint8Array[] = [];
    for await (const part of await this.get(sha256, { chunkBytes: ROW_BYTES })) parts.push(part);
    return Buffer.concat(parts);
  }

  async delete(sha256: string, options: { tx?: Sql | undefined } = {}): Promise<boolean> {
    assertDigest(sha256);
    const remove = async (tx: Sql) => {
      const { rows } = await tx.query<{ part_id: string }>(
        `DELETE FROM blobs WHERE sha256 = $1 RETURNING part_id`,
        [sha256],
      );
      const row = rows[0];
      if (row) await tx.query(`DELETE FROM blob_parts WHERE part_id = $1`, [row.part_id]);
      return row !== undefined;
    };
    return options.tx ? remove(options.tx) : this.sql().transaction(remove);
  }

  /**
   * Deletes parts no blob points at whose newest row is older than `idleMs` (puts of a
   * process killed mid-upload); returns how many rows and bytes went.
   */
  async sweepAbandonedParts(idleMs = ABANDONED_PARTS_AFTER_MS): Promise<{ rows: number; bytes: number }> {
    const { rows } = await this.sql().query<{ rows: string; bytes: string }>(
      `WITH abandoned AS (
         SELECT part_id FROM blob_parts p
         WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.part_id = p.part_id)
         GROUP BY part_id HAVING max(created_at) < now() - make_interval(secs => $1::double precision / 1000)
       ), gone AS (
         DELETE FROM blob_parts WHERE part_id IN (SELECT part_id FROM abandoned) RETURNING octet_length(data) AS n
       )
       SELECT count(*)::text AS rows, coalesce(sum(n), 0)::text AS bytes FROM gone`,
      [idleMs],
    );
    return { rows: Number(rows[0]?.rows ?? 0), bytes: Number(rows[0]?.bytes ?? 0) };
  }

  private async find(sha256: string): Promise<{ partId: string; size: number; parts: number }> {
    assertDigest(sha256);
    const { rows } = await this.sql().query<{ part_id: string; size: string; parts: number }>(
      `SELECT part_id, size, parts FROM blobs WHERE sha256 = $1`,
      [sha256],
    );
    const row = rows[0];
    if (!row) throw new BlobNotFoundError(sha256);
    return { partId: row.part_id, size: Number(row.size), parts: row.parts };
  }

  /** The rows of one blob in order, READ_BATCH per query: never the whole blob in memory. */
  private async *parts(partId: string, count: number): AsyncGenerator<Uint8Array> {
    for (let from = 0; from < count; from += READ_BATCH) {
      const { rows } = await this.sql().query<{ seq: number; data: Uint8Array }>(
        `SELECT seq, data FROM blob_parts WHERE part_id = $1 AND seq >= $2 AND seq < $3 ORDER BY seq`,
        [partId, from, from + READ_BATCH],
      );
      for (const [i, row] of rows.entries()) {
        // A missing row ends the read short; verifiedRead then reports the size.
        if (row.seq !== from + i) return;
        yield row.data;
      }
      if (rows.length < Math.min(READ_BATCH, count - from)) return;
    }
  }
}
