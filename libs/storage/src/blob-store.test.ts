import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobStore } from './blob-store.js';
import { BlobNotFoundError, BlobTooLargeError, DigestMismatchError, InvalidDigestError } from './errors.js';

const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');

async function* chunks(...parts: string[]): AsyncGenerator<Uint8Array> {
  for (const part of parts) yield Buffer.from(part);
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

describe('BlobStore', () => {
  let root: string;
  let store: BlobStore;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'ballast-blobs-test-'));
  });

  afterAll(() => rm(root, { recursive: true, force: true }));

  const fresh = async (name: string) => {
    store = new BlobStore(join(root, name));
    return store;
  };

  it('stores a Buffer under its sha256 and reads it back', async () => {
    await fresh('roundtrip');
    const data = Buffer.from('units sold per warehouse and day');
    const info = await store.put(data);
    expect(info).toEqual({ sha256: sha256(data), size: data.length });
    expect(await filesUnder(join(root, 'roundtrip'))).toEqual([
      join('sha256', info.sha256.slice(0, 2), info.sha256),
    ]);
    expect(await store.has(info.sha256)).toBe(true);
    expect(await store.stat(info.sha256)).toEqual(info);
    expect(await store.read(info.sha256)).toEqual(data);
    expect(await text(await store.get(info.sha256))).toBe(data.toString());
    expect(store.path(info.sha256)).toBe(
      join(root, 'roundtrip', 'sha256', info.sha256.slice(0, 2), info.sha256),
    );
  });

  it('streams async iterables and Node streams, checking an expected digest', async () => {
    await fresh('streams');
    const whole = 'abcdefghij'.repeat(10_000);
    const fromGenerator = await store.put(
      chunks(whole.slice(0, 3), whole.slice(3, 70_000), whole.slice(70_000)),
      {
        expectedSha256: sha256(whole),
      },
    );
    expect(fromGenerator).toEqual({ sha256: sha256(whole), size: whole.length });
    const fromStream = await store.put(Readable.from([Buffer.from('x'), new Uint8Array([121])]));
    expect(fromStream).toEqual({ sha256: sha256('xy'), size: 2 });
    expect((await store.read(fromStream.sha256)).toString()).toBe('xy');
  });

  it('streams a blob in reads of the size asked for', async () => {
    await fresh('chunks');
    const data = Buffer.alloc(25_000, 7);
    const info = await store.put(data);
    const sizes: number[] = [];
    for await (const chunk of await store.get(info.sha256, { chunkBytes: 10_000 })) sizes.push(chunk.length);
    expect(sizes).toEqual([10_000, 10_000, 5_000]);
  });

  it('stores empty content', async () => {
    await fresh('empty');
    const info = await store.put(new Uint8Array(0));
    expect(info).toEqual({ sha256: sha256(''), size: 0 });
    expect((await store.read(info.sha256)).length).toBe(0);
  });

  it('accepts the same content twice and keeps one copy', async () => {
    await fresh('twice');
    const first = await store.put(Buffer.from('same'));
    const [second, third] = await Promise.all([
      store.put(chunks('sa', 'me')),
      store.put(Buffer.from('same')),
    ]);
    expect(second).toEqual(first);
    expect(third).toEqual(first);
    expect(await filesUnder(join(root, 'twice'))).toEqual([
      join('sha256', first.sha256.slice(0, 2), first.sha256),
    ]);
  });

  it('rejects content that does not match the expected digest and leaves no file behind', async () => {
    await fresh('mismatch');
    const expected = sha256('what the client said');
    const err = await store
      .put(chunks('what ', 'arrived'), { expectedSha256: expected })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(err).toMatchObject({ code: 'invalid_argument', expected, actual: sha256('what arrived') });
    expect(await filesUnder(join(root, 'mismatch'))).toEqual([]);
    expect(await store.has(expected)).toBe(false);
    expect(await store.has(sha256('what arrived'))).toBe(false);
  });

  it('enforces maxBytes without reading a stream past the limit, leaving no file behind', async () => {
    await fresh('limit');
    let pulled = 0;
    async function* endless(): AsyncGenerator<Uint8Array> {
      for (;;) {
        pulled++;
        yield Buffer.alloc(1024, 7);
      }
    }
    const err = await store.put(endless(), { maxBytes: 10_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BlobTooLargeError);
    expect(err).toMatchObject({ code: 'resource_exhausted', maxBytes: 10_000 });
    expect(pulled).toBe(10);

    await expect(store.put(Buffer.alloc(11), { maxBytes: 10 })).rejects.toBeInstanceOf(BlobTooLargeError);
    expect(await filesUnder(join(root, 'limit'))).toEqual([]);
    expect(await store.put(Buffer.alloc(10), { maxBytes: 10 })).toMatchObject({ size: 10 });
  });

  it('rejects a stream that yields strings', async () => {
    await fresh('strings');
    await expect(store.put(Readable.from(['text'], { objectMode: true }))).rejects.toMatchObject({
      code: 'invalid_argument',
    });
    expect(await filesUnder(join(root, 'strings'))).toEqual([]);
  });

  it.each([
    '../../../../etc/passwd',
    '',
    'ab',
    sha256('x').toUpperCase(),
    `${sha256('x')}0`,
    `${sha256('x').slice(0, 62)}/.`,
    `${sha256('x').slice(0, 63)}\n`,
  ])('rejects the digest %j before touching the filesystem', async (digest) => {
    await fresh('invalid');
    const calls = [
      () => store.has(digest),
      () => store.stat(digest),
      () => store.get(digest),
      () => store.read(digest),
      () => store.delete(digest),
      () => store.put(Buffer.from('x'), { expectedSha256: digest }),
    ];
    for (const call of calls) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidDigestError);
      expect(err).toMatchObject({ code: 'invalid_argument' });
    }
    expect(() => store.path(digest)).toThrow(InvalidDigestError);
    expect(await filesUnder(join(root, 'invalid'))).toEqual([]);
  });

  it('reports a missing blob as not found', async () => {
    await fresh('missing');
    const absent = sha256('never stored');
    expect(await store.has(absent)).toBe(false);
    for (const call of [() => store.stat(absent), () => store.get(absent), () => store.read(absent)]) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BlobNotFoundError);
      expect(err).toMatchObject({ code: 'not_found', sha256: absent });
    }
    expect(await store.delete(absent)).toBe(false);
  });

  it('deletes a blob', async () => {
    await fresh('delete');
    const { sha256: digest } = await store.put(Buffer.from('to delete'));
    expect(await store.delete(digest)).toBe(true);
    expect(await store.has(digest)).toBe(false);
    await expect(store.read(digest)).rejects.toBeInstanceOf(BlobNotFoundError);
  });
});
