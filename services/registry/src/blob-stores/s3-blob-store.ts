import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { type BlobInfo, BlobNotFoundError, type BlobSource, type PutOptions } from '@ballast/storage';
import { type ArtifactBlobs, readAll, rechunk } from './blob-store.js';
import { assertDigest, ContentCheck, verifiedRead } from './content-check.js';

/**
 * Blobs in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, R2...), under
 * `<prefix>sha256/<first two hex>/<hex>` in one bucket.
 *
 * A put streams the content into a multipart upload (lib-storage's Upload: PART_BYTES per
 * part, PARTS_IN_FLIGHT at once, so at most their product is in memory) while it is hashed.
 * With the expected sha256 known (every artifact upload knows it), the upload goes straight
 * to the blob's key and the hashing stream fails before its end when the bytes are not the
 * ones expected: the multipart upload is then aborted and never completed, so no object
 * appears. Without it, the content goes to `<prefix>tmp/<uuid>` and is copied to its key
 * once hashed (CopyObject: at most 5 GiB, hence maxBlobBytes). An upload cut by a killed
 * process leaves an incomplete multipart upload or a tmp/ object: the bucket's lifecycle
 * rules should abort the first and expire the second (deploy/README.md).
 *
 * Credentials come from the SDK's default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
 * a web identity token, an instance role...), never from Ballast's own variables.
 */

export interface S3BlobStoreOptions {
  bucket: string;
  /** Key prefix, e.g. `ballast/registry/`; '' for the bucket's root. */
  prefix?: string;
  /** An S3-compatible endpoint (MinIO...); unset: AWS. */
  endpoint?: string | undefined;
  region?: string | undefined;
  /** `http://host/bucket/key` addressing, which MinIO and most self-hosted stores need. */
  forcePathStyle?: boolean;
}

const PART_BYTES = 8 * 1024 * 1024;
const PARTS_IN_FLIGHT = 2;
/** CopyObject's own limit (larger copies need UploadPartCopy). */
const MAX_BLOB_BYTES = 5 * 1024 * 1024 * 1024;

export class S3BlobStore implements ArtifactBlobs {
  readonly location: string;
  readonly maxBlobBytes = MAX_BLOB_BYTES;
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #prefix: string;

  constructor(options: S3BlobStoreOptions) {
    this.#bucket = options.bucket;
    this.#prefix = options.prefix ?? '';
    this.location = `s3://${options.bucket}/${this.#prefix}`;
    this.#client = new S3Client({
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      ...(options.region ? { region: options.region } : {}),
      forcePathStyle: options.forcePathStyle ?? false,
    });
  }

  key(sha256: string): string {
    assertDigest(sha256);
    return `${this.#prefix}sha256/${sha256.slice(0, 2)}/${sha256}`;
  }

  async has(sha256: string): Promise<boolean> {
    try {
      await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: this.key(sha256) }));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  async put(data: BlobSource, options: PutOptions = {}): Promise<BlobInfo> {
    const check = new ContentCheck(options, this.maxBlobBytes);
    const expected = options.expectedSha256;
    const target = expected ? this.key(expected) : `${this.#prefix}tmp/${randomUUID()}`;
    // The digest is checked inside the stream, before its end: a mismatch aborts the upload.
    async function* body(): AsyncGenerator<Uint8Array> {
      yield* check.pass(data);
      check.finish();
    }
    const upload = new Upload({
      client: this.#client,
      params: { Bucket: this.#bucket, Key: target, Body: Readable.from(body(), { objectMode: false }) },
      partSize: PART_BYTES,
      queueSize: PARTS_IN_FLIGHT,
      leavePartsOnError: false,
    });
    await upload.done().catch((err: unknown) => {
      throw check.failure ?? err;
    });
    const sha256 = check.finish();
    if (!expected) {
      try {
        await this.#client.send(
          new CopyObjectCommand({
            Bucket: this.#bucket,
            CopySource: `${this.#bucket}/${target}`,
            Key: this.key(sha256),
          }),
        );
      } finally {
        await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: target }));
      }
    }
    return { sha256, size: check.size };
  }

  async get(sha256: string, options: { chunkBytes?: number } = {}): Promise<AsyncIterable<Uint8Array>> {
    let body: AsyncIterable<Uint8Array>;
    let size: number | undefined;
    try {
      const object = await this.#client.send(
        new GetObjectCommand({ Bucket: this.#bucket, Key: this.key(sha256) }),
      );
      body = object.Body as unknown as AsyncIterable<Uint8Array>;
      size = object.ContentLength;
    } catch (err) {
      throw isNotFound(err) ? new BlobNotFoundError(sha256) : err;
    }
    return rechunk(verifiedRead(body, sha256, this.location, size), options.chunkBytes ?? 64 * 1024);
  }

  async read(sha256: string): Promise<Buffer> {
    return readAll(await this.get(sha256));
  }

  async delete(sha256: string): Promise<boolean> {
    const existed = await this.has(sha256);
    if (existed)
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.key(sha256) }));
    return existed;
  }

  close(): void {
    this.#client.destroy();
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NotFound' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404;
}
