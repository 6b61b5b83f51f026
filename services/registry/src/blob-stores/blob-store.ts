import type { BlobInfo, BlobSource, PutOptions, Sql } from '@ballast/storage';

/**
 * What the registry needs of a store of content-addressed blobs, whatever holds the bytes:
 * the local filesystem (libs/storage's BlobStore, the embedded default), PostgreSQL
 * (postgres-blob-store.ts) or an S3-compatible object store (s3-blob-store.ts). Every
 * backend passes contract.test.ts, which pins down what follows.
 *
 * - put: streams the content (never the whole of it in memory), refuses it unless it hashes
 *   to `expectedSha256` and fits `maxBytes`, and makes it visible whole or not at all.
 *   Putting content already stored is harmless and leaves one copy.
 * - get: a stream of the content in pieces of `chunkBytes` (the last one shorter); a missing
 *   blob rejects get itself (BlobNotFoundError), before any byte.
 * - delete: returns whether there was a blob. `tx` is the transaction the caller decides in
 *   (artifacts.ts deletes a failed upload's blobs under the lease lock): a backend that lives
 *   in that database deletes inside it, so the check and the delete commit as one step.
 */
export interface ArtifactBlobs {
  /** Where the bytes live, for logs and health details (e.g. `postgres`, `s3://bucket/prefix`). */
  readonly location: string;
  /** The largest blob this backend takes (undefined: only the artifact limit applies). */
  readonly maxBlobBytes?: number | undefined;
  has(sha256: string, options?: { tx?: Sql | undefined }): Promise<boolean>;
  put(data: BlobSource, options?: PutOptions): Promise<BlobInfo>;
  get(sha256: string, options?: { chunkBytes?: number }): Promise<AsyncIterable<Uint8Array>>;
  /** The whole content, for small blobs only (model.json). */
  read(sha256: string): Promise<Buffer>;
  delete(sha256: string, options?: { tx?: Sql | undefined }): Promise<boolean>;
}

/** The bytes of `source` in pieces of exactly `size` (the last one shorter), copying as little as it can. */
export async function* rechunk(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const piece of source) {
    let data = Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    while (pendingBytes + data.byteLength >= size) {
      const take = size - pendingBytes;
      pending.push(data.subarray(0, take));
      yield pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending, size);
      pending = [];
      pendingBytes = 0;
      data = data.subarray(take);
    }
    if (data.byteLength > 0) {
      pending.push(data);
      pendingBytes += data.byteLength;
    }
  }
  if (pendingBytes > 0) yield Buffer.concat(pending, pendingBytes);
}

/** Every byte of a stream in one Buffer (model.json, tests). */
export async function readAll(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of source) parts.push(Buffer.from(part.buffer, part.byteOffset, part.byteLength));
  return Buffer.concat(parts);
}
