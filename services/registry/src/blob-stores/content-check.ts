import { createHash } from 'node:crypto';
import {
  type BlobSource,
  BlobTooLargeError,
  DigestMismatchError,
  InvalidArgumentError,
  InvalidDigestError,
  isSha256Hex,
  type PutOptions,
} from '@ballast/storage';

/** Checked before a digest names a row, a key or a file: it is the caller's input. */
export function assertDigest(value: string, field = 'sha256'): void {
  if (typeof value !== 'string' || !isSha256Hex(value)) throw new InvalidDigestError(String(value), field);
}

/**
 * The content of a put as it streams by: counted against the size limit (a stream is not
 * read past it), hashed, and refused if it yields anything but bytes. `finish()` then
 * checks the digest the caller expected. What the filesystem BlobStore does inline, shared
 * by the backends that hand the bytes on to somewhere else.
 */
export class ContentCheck {
  readonly #hash = createHash('sha256');
  readonly #maxBytes: number | undefined;
  readonly #expected: string | undefined;
  size = 0;
  /** What the check refused, kept so a backend that wraps stream errors can throw the original. */
  failure: Error | undefined;
  #sha256: string | undefined;

  constructor(options: PutOptions, backendMaxBytes?: number) {
    if (options.expectedSha256 !== undefined) assertDigest(options.expectedSha256, 'expectedSha256');
    this.#expected = options.expectedSha256;
    const limits = [options.maxBytes, backendMaxBytes].filter((n): n is number => n !== undefined);
    this.#maxBytes = limits.length > 0 ? Math.min(...limits) : undefined;
  }

  async *pass(data: BlobSource): AsyncGenerator<Uint8Array> {
    try {
      yield* this.#pass(data);
    } catch (err) {
      this.failure = err as Error;
      throw err;
    }
  }

  async *#pass(data: BlobSource): AsyncGenerator<Uint8Array> {
    if (this.#maxBytes !== undefined && data instanceof Uint8Array && data.byteLength > this.#maxBytes)
      throw new BlobTooLargeError(this.#maxBytes);
    for await (const chunk of data instanceof Uint8Array ? [data] : data) {
      if (!(chunk instanceof Uint8Array))
        throw new InvalidArgumentError('blob content: a stream must yield bytes, not strings or objects');
      this.size += chunk.byteLength;
      if (this.#maxBytes !== undefined && this.size > this.#maxBytes)
        throw new BlobTooLargeError(this.#maxBytes);
      this.#hash.update(chunk);
      yield chunk;
    }
  }

  /** The content's sha256; throws DigestMismatchError when it is not the one expected. */
  finish(): string {
    this.#sha256 ??= this.#hash.digest('hex');
    if (this.#expected !== undefined && this.#sha256 !== this.#expected) {
      this.failure = new DigestMismatchError(this.#expected, this.#sha256);
      throw this.failure;
    }
    return this.#sha256;
  }
}

/** A blob's bytes whose sha256 or size is not what its name says: storage corruption, never bad input. */
export class BlobCorruptError extends Error {
  override name = 'BlobCorruptError';
  constructor(
    readonly sha256: string,
    readonly where: string,
    detail: string,
  ) {
    super(`blob sha256:${sha256} is corrupt in ${where}: ${detail}`);
  }
}

/**
 * Passes a stored blob's bytes through, hashing them; after the last byte, throws
 * BlobCorruptError unless they hash to the blob's name (and add up to `size`, when known).
 * A reader therefore never takes a damaged blob for a whole one.
 */
export async function* verifiedRead(
  source: AsyncIterable<Uint8Array>,
  sha256: string,
  where: string,
  size?: number,
): AsyncGenerator<Uint8Array> {
  const hash = createHash('sha256');
  let read = 0;
  for await (const chunk of source) {
    hash.update(chunk);
    read += chunk.byteLength;
    yield chunk;
  }
  if (size !== undefined && read !== size)
    throw new BlobCorruptError(sha256, where, `${read} bytes read, ${size} stored`);
  const actual = hash.digest('hex');
  if (actual !== sha256) throw new BlobCorruptError(sha256, where, `its bytes hash to ${actual}`);
}
