import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DeleteObjectsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import {
  BlobNotFoundError,
  BlobTooLargeError,
  DigestMismatchError,
  InvalidDigestError,
  migrate,
  openDatabase,
  type Sql,
} from '@ballast/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrations } from '../migrations.js';
import { TEST_DATABASE_URL } from '../test-registry.js';
import { type ArtifactBlobs, readAll } from './blob-store.js';
import { fsBlobStore } from './open-blob-store.js';
import { PostgresBlobStore, ROW_BYTES } from './postgres-blob-store.js';
import { S3BlobStore } from './s3-blob-store.js';

// One contract, every blob store backend: the same tests on each.
//
// fs and postgres (on the shared Postgres, and on PGlite, the embedded database the same
// backend runs on without BALLAST_DATABASE_URL) always run. s3 runs only where an S3 store
// is configured in the environment: BALLAST_REGISTRY_S3_BUCKET (and BALLAST_REGISTRY_S3_ENDPOINT
// for a store other than AWS, _REGION, _FORCE_PATH_STYLE, credentials in AWS_*), the
// variables the registry itself reads. This machine has none and nothing here fakes one, so
// here s3 is not part of the run at all: it is not registered as a skipped test. The
// describe block's name lists the backends that ran, so the output says which.

interface Backend {
  name: string;
  open(): Promise<{
    blobs: ArtifactBlobs;
    /** Everything the backend holds, blobs and temporary leftovers alike. */
    inventory(): Promise<string[]>;
    close(): Promise<void>;
  }>;
}

/** Files (not directories) under `dir`, relative to it. */
async function filesUnder(dir: string): Promise<string[]> {
  const paths = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
  const isFile = await Promise.all(paths.map(async (p) => (await stat(join(dir, p))).isFile()));
  return paths.filter((_, i) => isFile[i]).sort();
}

async function postgresBackend(open: () => Promise<{ sql: Sql; drop(): Promise<void> }>) {
  const { sql, drop } = await open();
  await migrate(sql, migrations);
  return {
    blobs: new PostgresBlobStore(() => sql),
    async inventory() {
      const blobs = await sql.query<{ sha256: string }>(`SELECT sha256 FROM blobs ORDER BY sha256`);
      const parts = await sql.query<{ part_id: string; n: string }>(
        `SELECT part_id, count(*)::text AS n FROM blob_parts GROUP BY part_id ORDER BY part_id`,
      );
      return [...blobs.rows.map((r) => `blob ${r.sha256}`), ...parts.rows.map((r) => `parts ${r.n}`)];
    },
    async close() {
      await drop();
      await sql.close();
    },
  };
}

const backends: Backend[] = [
  {
    name: 'fs',
    async open() {
      const dir = await mkdtemp(join(tmpdir(), 'ballast-blob-contract-'));
      return {
        blobs: fsBlobStore(dir),
        inventory: () => filesUnder(dir),
        close: () => rm(dir, { recursive: true, force: true }),
      };
    },
  },
  {
    name: 'postgres',
    open: () =>
      postgresBackend(async () => {
        const schema = `t_blobs_${randomBytes(4).toString('hex')}`;
        const sql = await openDatabase({ url: TEST_DATABASE_URL, schema });
        return { sql, drop: () => sql.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`) };
      }),
  },
  {
    name: 'postgres on PGlite',
    open: () =>
      postgresBackend(async () => {
        const dir = await mkdtemp(join(tmpdir(), 'ballast-blob-contract-pglite-'));
        const sql = await openDatabase({ dataDir: dir, schema: 'registry' });
        return { sql, drop: () => rm(dir, { recursive: true, force: true }) };
      }),
  },
];

const s3Bucket = process.env.BALLAST_REGISTRY_S3_BUCKET;
if (s3Bucket) {
  backends.push({
    name: 's3',
    async open() {
      const prefix = `ballast-contract-test/${randomBytes(4).toString('hex')}/`;
      const options = {
        bucket: s3Bucket,
        prefix,
        endpoint: process.env.BALLAST_REGISTRY_S3_ENDPOINT,
        region: process.env.BALLAST_REGISTRY_S3_REGION,
        forcePathStyle: /^(1|true)$/i.test(process.env.BALLAST_REGISTRY_S3_FORCE_PATH_STYLE ?? ''),
      };
      const blobs = new S3BlobStore(options);
      const client = new S3Client({
        ...(options.endpoint ? { endpoint: options.endpoint } : {}),
        ...(options.region ? { region: options.region } : {}),
        forcePathStyle: options.forcePathStyle,
      });
      const keys = async () =>
        ((await client.send(new ListObjectsV2Command({ Bucket: s3Bucket, Prefix: prefix }))).Contents ?? [])
          .map((o) => (o.Key ?? '').slice(prefix.length))
          .sort();
      return {
        blobs,
        inventory: keys,
        async close() {
          const left = await keys();
          if (left.length > 0)
            await client.send(
              new DeleteObjectsCommand({
                Bucket: s3Bucket,
                Delete: { Objects: left.map((k) => ({ Key: `${prefix}${k}` })) },
              }),
            );
          blobs.close();
          client.destroy();
        },
      };
    },
  });
}

const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');

async function* chunks(...parts: (string | Uint8Array)[]): AsyncGenerator<Uint8Array> {
  for (const part of parts) yield typeof part === 'string' ? Buffer.from(part) : part;
}

describe(`blob store contract (backends run: ${backends.map((b) => b.name).join(', ')})`, () => {
  describe.each(backends)('$name', (backend) => {
    let store: Awaited<ReturnType<Backend['open']>>;
    let blobs: ArtifactBlobs;

    beforeAll(async () => {
      store = await backend.open();
      blobs = store.blobs;
    });
    afterAll(() => store.close());

    const forget = async (...digests: string[]) => {
      for (const digest of digests) await blobs.delete(digest);
      expect(await store.inventory()).toEqual([]);
    };

    it('stores bytes under their sha256 and reads them back, whole and streamed', async () => {
      const data = Buffer.from('units sold per warehouse and day');
      const info = await blobs.put(data);
      expect(info).toEqual({ sha256: sha256(data), size: data.length });
      expect(await blobs.has(info.sha256)).toBe(true);
      expect(await blobs.read(info.sha256)).toEqual(data);
      expect(await readAll(await blobs.get(info.sha256))).toEqual(data);
      await forget(info.sha256);
    });

    it('streams content larger than any one piece in and out, in the chunk size asked for', async () => {
      // Odd-sized pieces straddling the backends' own boundaries (Postgres rows of 256 KiB).
      const whole = randomBytes(3 * ROW_BYTES + 12_345);
      const pieces = [whole.subarray(0, 7), whole.subarray(7, ROW_BYTES + 3), whole.subarray(ROW_BYTES + 3)];
      const info = await blobs.put(chunks(...pieces), { expectedSha256: sha256(whole) });
      expect(info).toEqual({ sha256: sha256(whole), size: whole.length });
      const sizes: number[] = [];
      const read: Uint8Array[] = [];
      for await (const chunk of await blobs.get(info.sha256, { chunkBytes: 100_000 })) {
        sizes.push(chunk.byteLength);
        read.push(chunk);
      }
      expect(sizes.slice(0, -1).every((n) => n === 100_000)).toBe(true);
      expect(sizes.at(-1)).toBe(whole.length % 100_000);
      expect(Buffer.concat(read)).toEqual(whole);
      const fromStream = await blobs.put(Readable.from([Buffer.from('x'), new Uint8Array([121])]));
      expect(fromStream).toEqual({ sha256: sha256('xy'), size: 2 });
      await forget(info.sha256, fromStream.sha256);
    });

    it('stores empty content', async () => {
      const info = await blobs.put(new Uint8Array(0));
      expect(info).toEqual({ sha256: sha256(''), size: 0 });
      expect((await blobs.read(info.sha256)).length).toBe(0);
      await forget(info.sha256);
    });

    it('keeps one copy of content put twice, concurrently or not', async () => {
      const first = await blobs.put(Buffer.from('same'));
      const once = await store.inventory();
      const [second, third] = await Promise.all([
        blobs.put(chunks('sa', 'me')),
        blobs.put(Buffer.from('same')),
      ]);
      expect(second).toEqual(first);
      expect(third).toEqual(first);
      expect(await store.inventory()).toEqual(once);
      expect(await blobs.delete(first.sha256)).toBe(true);
      expect(await blobs.has(first.sha256)).toBe(false);
      expect(await store.inventory()).toEqual([]);
    });

    it('refuses content that does not hash to the expected sha256, leaving nothing behind', async () => {
      const expected = sha256('what the client said');
      const err = await blobs
        .put(chunks('what ', 'arrived', 'x'.repeat(ROW_BYTES)), { expectedSha256: expected })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DigestMismatchError);
      expect(err).toMatchObject({ code: 'invalid_argument', expected });
      expect(await blobs.has(expected)).toBe(false);
      expect(await store.inventory()).toEqual([]);
    });

    it('enforces maxBytes without reading a stream past the limit, leaving nothing behind', async () => {
      let pulled = 0;
      async function* endless(): AsyncGenerator<Uint8Array> {
        for (;;) {
          pulled++;
          yield Buffer.alloc(64 * 1024, 7);
        }
      }
      const err = await blobs.put(endless(), { maxBytes: 10 * 64 * 1024 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BlobTooLargeError);
      expect(err).toMatchObject({ code: 'resource_exhausted', maxBytes: 10 * 64 * 1024 });
      expect(pulled).toBe(11);
      await expect(blobs.put(Buffer.alloc(11), { maxBytes: 10 })).rejects.toBeInstanceOf(BlobTooLargeError);
      expect(await store.inventory()).toEqual([]);
      const fits = await blobs.put(Buffer.alloc(10), { maxBytes: 10 });
      expect(fits.size).toBe(10);
      await forget(fits.sha256);
    });

    it('refuses a stream of strings', async () => {
      await expect(blobs.put(Readable.from(['text'], { objectMode: true }))).rejects.toMatchObject({
        code: 'invalid_argument',
      });
      expect(await store.inventory()).toEqual([]);
    });

    /** Every call of the interface that names a blob, with that name. */
    const callsNaming = (digest: string) => ({
      has: () => blobs.has(digest),
      get: () => blobs.get(digest),
      read: () => blobs.read(digest),
      delete: () => blobs.delete(digest),
      put: () => blobs.put(Buffer.from('x'), { expectedSha256: digest }),
    });
    const outcomes = async (calls: Record<string, () => Promise<unknown>>) =>
      Object.fromEntries(
        await Promise.all(
          Object.entries(calls).map(async ([name, call]) => [name, await call().catch((e: unknown) => e)]),
        ),
      );

    it.each([
      '../../../../etc/passwd',
      '',
      sha256('x').toUpperCase(),
      `${sha256('x')}0`,
      `${sha256('x').slice(0, 62)}/.`,
      `' OR 1=1 --${'0'.repeat(53)}`,
    ])('refuses the digest %j before touching the store', async (digest) => {
      for (const outcome of Object.values(await outcomes(callsNaming(digest)))) {
        expect(outcome).toBeInstanceOf(InvalidDigestError);
        expect(outcome).toMatchObject({ code: 'invalid_argument' });
      }
      expect(await store.inventory()).toEqual([]);
    });

    it('reports a missing blob as not found, before any byte', async () => {
      const absent = sha256('never stored');
      const { has, get, read, delete: deleted } = await outcomes(callsNaming(absent));
      expect({ has, deleted }).toEqual({ has: false, deleted: false });
      for (const outcome of [get, read]) {
        expect(outcome).toBeInstanceOf(BlobNotFoundError);
        expect(outcome).toMatchObject({ code: 'not_found', sha256: absent });
      }
    });
  });
});
