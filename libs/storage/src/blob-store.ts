import { createHash, randomUUID } from 'node:crypto';
import { type FileHandle, mkdir, open, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import {
  BlobNotFoundError,
  BlobTooLargeError,
  DigestMismatchError,
  InvalidArgumentError,
  InvalidDigestError,
} from './errors.js';

export interface BlobInfo {
  sha256: string;
  size: number;
}

export interface PutOptions {
  /** Refuse the content unless it hashes to this (64 lowercase hex). */
  expectedSha256?: string | undefined;
  /** Refuse content larger than this many bytes; a stream is not read past the limit. */
  maxBytes?: number | undefined;
}

export type BlobSource = Buffer | Uint8Array | AsyncIterable<Uint8Array>;

const SHA256_HEX = /^[0-9a-f]{64}$/;

export function isSha256Hex(value: string): boolean {
  return SHA256_HEX.test(value);
}

/**
 * Immutable blobs on the local filesystem, named by the sha256 of their content as
 * `<root>/sha256/<first two hex>/<hex>`. A blob appears whole or not at all: content is
 * written to a temporary file under `<root>/sha256` (the same filesystem, so the final
 * rename is atomic), flushed to disk, and only then renamed into place.
 */
export class BlobStore {
  private readonly blobsDir: string;

  constructor(readonly rootDir: string) {
    this.blobsDir = join(rootDir, 'sha256');
  }

  /** The file holding a blob, for readers that need a path (it may not exist). */
  path(sha256: string): string {
    assertDigest(sha256);
    return join(this.blobsDir, sha256.slice(0, 2), sha256);
  }

  async put(data: BlobSource, options: PutOptions = {}): Promise<BlobInfo> {
    const { expectedSha256, maxBytes } = options;
    if (expectedSha256 !== undefined) assertDigest(expectedSha256, 'expectedSha256');
    if (maxBytes !== undefined && data instanceof Uint8Array && data.byteLength > maxBytes) {
      throw new BlobTooLargeError(maxBytes);
    }

    await mkdir(this.blobsDir, { recursive: true });
    // Dot-prefixed so it can never be taken for a shard directory or a blob.
    const tempPath = join(this.blobsDir, `.tmp-${randomUUID()}`);
    let file: FileHandle | undefined = await open(tempPath, 'wx');
    let committed = false;
    try {
      const hash = createHash('sha256');
      let size = 0;
      for await (const chunk of data instanceof Uint8Array ? [data] : data) {
        if (!(chunk instanceof Uint8Array)) {
          throw new InvalidArgumentError('blob content: a stream must yield bytes, not strings or objects');
        }
        size += chunk.byteLength;
        if (maxBytes !== undefined && size > maxBytes) throw new BlobTooLargeError(maxBytes);
        hash.update(chunk);
        await writeAll(file, chunk);
      }
      const sha256 = hash.digest('hex');
      if (expectedSha256 !== undefined && sha256 !== expectedSha256) {
        throw new DigestMismatchError(expectedSha256, sha256);
      }
      await file.sync();
      await file.close();
      file = undefined;

      const shardDir = join(this.blobsDir, sha256.slice(0, 2));
      await mkdir(shardDir, { recursive: true });
      // Same content twice lands on the same name; replacing it with identical bytes is harmless.
      await rename(tempPath, join(shardDir, sha256));
      committed = true;
      await syncDir(shardDir);
      return { sha256, size };
    } finally {
      await file?.close().catch(() => undefined);
      if (!committed) await rm(tempPath, { force: true });
    }
  }

  async has(sha256: string): Promise<boolean> {
    try {
      await stat(this.path(sha256));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  async stat(sha256: string): Promise<BlobInfo> {
    try {
      const info = await stat(this.path(sha256));
      return { sha256, size: info.size };
    } catch (err) {
      throw isNotFound(err) ? new BlobNotFoundError(sha256) : err;
    }
  }

  /**
   * A stream of the content. The file is opened before returning, so a missing blob rejects
   * here. `chunkBytes` sets the read size, so a caller that forwards chunks need not re-slice.
   */
  async get(sha256: string, options: { chunkBytes?: number } = {}): Promise<Readable> {
    let file: FileHandle;
    try {
      file = await open(this.path(sha256), 'r');
    } catch (err) {
      throw isNotFound(err) ? new BlobNotFoundError(sha256) : err;
    }
    return file.createReadStream({ highWaterMark: options.chunkBytes ?? 64 * 1024 });
  }

  async read(sha256: string): Promise<Buffer> {
    try {
      return await readFile(this.path(sha256));
    } catch (err) {
      throw isNotFound(err) ? new BlobNotFoundError(sha256) : err;
    }
  }

  /** Returns whether there was a blob to delete. */
  async delete(sha256: string): Promise<boolean> {
    try {
      await unlink(this.path(sha256));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }
}

// Checked before any path is built from the value: it is the only thing standing between
// a caller-supplied digest and the filesystem (`../..`).
function assertDigest(value: string, field?: string): void {
  if (typeof value !== 'string' || !SHA256_HEX.test(value))
    throw new InvalidDigestError(String(value), field);
}

async function writeAll(file: FileHandle, chunk: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < chunk.byteLength) {
    const { bytesWritten } = await file.write(chunk, offset, chunk.byteLength - offset);
    offset += bytesWritten;
  }
}

// Makes the rename itself durable. Not every platform can fsync a directory (Windows
// cannot); there the rename is as durable as the OS makes it.
async function syncDir(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // best effort, see above
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

function isNotFound(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'ENOENT';
}
