import { createHash, randomUUID } from 'node:crypto';
import type {
  ArtifactFile,
  ArtifactManifest,
  DownloadArtifactResponseSchema,
  UploadArtifactRequest,
} from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { BallastError, invalidArgument, notFound } from '@ballast/grpc-kit';
import {
  ArtifactError,
  checkWeightBudget,
  manifestDigest,
  parseModelJson,
  validateArtifactPath,
  type WeightBudget,
  weightBudgetFromEnv,
} from '@ballast/ml/artifact';
import { isSha256Hex, type Sql } from '@ballast/storage';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { ArtifactBlobs } from './blob-stores/blob-store.js';
import {
  type ArtifactRecord,
  dropBlobLeases,
  findArtifact,
  insertArtifact,
  leaseBlobs,
  releaseBlobLeases,
} from './store.js';

/**
 * Artifact upload and download. An artifact is a TF.js model: `model.json` plus the weight
 * files it names. Each file is a blob named by its sha256 (so unchanged weights are stored
 * once across versions); the artifact is named by the digest of its canonical manifest.
 *
 * Upload verifies every byte before the artifact exists: each file's size and sha256, the
 * manifest digest, and that model.json parses and names only files the manifest holds. On
 * any failure no artifact row is written and the blobs nothing else needs are removed.
 *
 * Blob lifetime. Blobs are shared: two uploads in flight may list the same file, and an
 * upload that finds a blob already present cannot tell whether the upload that wrote it will
 * succeed. So a blob is kept while an artifact row lists it OR an upload in flight leases it:
 * - an upload leases every blob of its manifest (blob_leases, committed) before it writes any;
 * - on success it writes the artifact row and ends its leases in one transaction;
 * - on failure it ends its leases and deletes those of its blobs that no other lease and no
 *   artifact row holds, check and delete under one lock that leasing also takes.
 * A blob is therefore deleted only when nothing can still need it; an upload that leases it
 * afterwards writes it again (every upload writes all its files). A lease left by a process
 * killed mid-upload only keeps its blobs on disk: space, never a lost file.
 */

/** What the registry needs of a blob store, and its backends: blob-stores/blob-store.ts. */
export type { ArtifactBlobs } from './blob-stores/blob-store.js';

export interface ArtifactLimits {
  maxChunkBytes: number;
  maxArtifactBytes: number;
  maxFiles: number;
  /** The weights a model.json may declare or imply (default: BALLAST_MODEL_MAX_WEIGHT_BYTES, 1 GiB). */
  weightBudget?: WeightBudget;
}

export const DEFAULT_ARTIFACT_LIMITS: ArtifactLimits = {
  maxChunkBytes: 1024 * 1024,
  maxArtifactBytes: 2 * 1024 * 1024 * 1024,
  maxFiles: 1000,
};

const MODEL_JSON = 'model.json';

export interface UploadResult {
  manifest: ArtifactManifest;
  totalBytes: number;
  alreadyPresent: boolean;
}

export async function uploadArtifact(
  sql: Sql,
  blobs: ArtifactBlobs,
  requests: AsyncIterable<UploadArtifactRequest>,
  limits: ArtifactLimits,
): Promise<UploadResult> {
  const stream = requests[Symbol.asyncIterator]();
  const first = await stream.next();
  if (first.done || first.value.part.case !== 'manifest')
    throw invalidArgument('manifest', 'the first message must carry the artifact manifest');
  const manifest = checkManifest(first.value.part.value, limits);
  checkBlobLimit(manifest, blobs.maxBlobBytes);

  const uploadId = randomUUID();
  const leased = [...new Set(manifest.files.map((f) => f.sha256))];
  await leaseBlobs(sql, uploadId, leased);
  try {
    for (const [index, file] of manifest.files.entries()) {
      try {
        await blobs.put(fileChunks(stream, file, limits.maxChunkBytes), {
          expectedSha256: file.sha256,
          maxBytes: Number(file.size),
        });
      } catch (err) {
        if ((err as { name?: string }).name === 'DigestMismatchError')
          throw invalidArgument(
            `manifest.files[${index}].sha256`,
            `the bytes received for ${file.path} hash to ${(err as { actual: string }).actual}, not ${file.sha256}`,
          );
        throw err;
      }
    }
    const extra = await stream.next();
    if (!extra.done) throw invalidArgument('chunk', 'more data arrived after the last file of the manifest');

    await checkModelJson(blobs, manifest.files, limits.weightBudget ?? weightBudgetFromEnv());
    const totalBytes = manifest.files.reduce((sum, f) => sum + Number(f.size), 0);
    // Stored sorted by path, as the digest is computed, so downloads list files the same way.
    const files = [...manifest.files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const inserted = await sql.transaction(async (tx) => {
      const added = await insertArtifact(tx, { digest: manifest.digest, files, totalBytes });
      await releaseBlobLeases(tx, uploadId);
      return added;
    });
    return { manifest: { ...manifest, files }, totalBytes, alreadyPresent: !inserted };
  } catch (err) {
    // Nothing half-written: drop the blobs no other upload and no artifact needs. If the
    // database cannot be reached now, the leases stay and so do the blobs (space, not loss).
    await dropBlobLeases(sql, uploadId, leased, async (unneeded, tx) => {
      for (const sha256 of unneeded) await blobs.delete(sha256, { tx }).catch(() => undefined);
    }).catch(() => undefined);
    throw err;
  }
}

/**
 * FAILED_PRECONDITION naming the first blob of `artifact` the store does not hold: a version
 * is never registered over an artifact that cannot be downloaded whole. `tx`: the
 * transaction registering the version (a blob store in that database reads in it).
 */
export async function checkBlobsStored(
  blobs: ArtifactBlobs,
  artifact: ArtifactRecord,
  tx?: Sql,
): Promise<void> {
  for (const file of artifact.files) {
    if (!(await blobs.has(file.sha256, { tx })))
      throw new BallastError(
        'failed_precondition',
        `artifact_digest: blob sha256:${file.sha256} (${file.path}) of artifact ${artifact.digest} is missing from the blob store; upload the artifact again`,
        'artifact_digest',
        'every blob of the artifact must be stored',
      );
  }
}

function checkManifest(manifest: ArtifactManifest, limits: ArtifactLimits): ArtifactManifest {
  const { files } = manifest;
  if (files.length === 0) throw invalidArgument('manifest.files', `must list at least ${MODEL_JSON}`);
  if (files.length > limits.maxFiles)
    throw new BallastError(
      'resource_exhausted',
      `manifest.files: ${files.length} files exceed the limit of ${limits.maxFiles}`,
      'manifest.files',
      `at most ${limits.maxFiles} files`,
    );
  const paths = new Set<string>();
  let total = 0;
  files.forEach((file, index) => {
    const at = `manifest.files[${index}]`;
    try {
      validateArtifactPath(file.path);
    } catch (err) {
      throw invalidArgument(`${at}.path`, (err as Error).message);
    }
    const misleading = misleadingPath(file.path);
    if (misleading) throw invalidArgument(`${at}.path`, misleading);
    if (paths.has(file.path)) throw invalidArgument(`${at}.path`, `duplicates ${file.path}`);
    paths.add(file.path);
    if (file.size < 0n) throw invalidArgument(`${at}.size`, `must be >= 0, got ${file.size}`);
    if (!isSha256Hex(file.sha256))
      throw invalidArgument(`${at}.sha256`, 'must be 64 lowercase hex characters');
    total += Number(file.size);
  });
  if (!paths.has(MODEL_JSON))
    throw invalidArgument('manifest.files', `must include ${MODEL_JSON} (a TF.js model)`);
  if (total > limits.maxArtifactBytes)
    throw new BallastError(
      'resource_exhausted',
      `manifest.files: ${total} bytes exceed the artifact limit of ${limits.maxArtifactBytes} bytes`,
      'manifest.files',
      `at most ${limits.maxArtifactBytes} bytes in all`,
    );
  const digest = manifestDigest(files.map((f) => ({ path: f.path, size: Number(f.size), sha256: f.sha256 })));
  if (manifest.digest && manifest.digest !== digest)
    throw invalidArgument('manifest.digest', `does not match the files listed: they digest to ${digest}`);
  return { ...manifest, digest };
}

/** RESOURCE_EXHAUSTED naming the first file larger than the blob store takes, before anything is written. */
function checkBlobLimit(manifest: ArtifactManifest, maxBlobBytes: number | undefined): void {
  if (maxBlobBytes === undefined) return;
  const index = manifest.files.findIndex((f) => Number(f.size) > maxBlobBytes);
  if (index < 0) return;
  const rule = `at most ${maxBlobBytes} bytes per file in this registry's blob store`;
  throw new BallastError(
    'resource_exhausted',
    `manifest.files[${index}].size: ${manifest.files[index]?.size} bytes exceed ${rule}`,
    `manifest.files[${index}].size`,
    rule,
  );
}

// Embeddings, overrides and isolates: they make a name display as something else
// ("w\u202Enib.exe" reads as "wexe.bin"), in listings, logs and review tools alike.
const BIDI_CONTROL = /[\u202A-\u202E\u2066-\u2069]/u;

/**
 * Rules beyond validateArtifactPath's (which refuses control characters, escapes and empty
 * segments): a path must read as what it is. The rule broken, or undefined.
 */
export function misleadingPath(path: string): string | undefined {
  const bidi = BIDI_CONTROL.exec(path);
  if (bidi)
    return `must not contain bidirectional control characters (U+202A-U+202E, U+2066-U+2069): found U+${bidi[0].codePointAt(0)?.toString(16).toUpperCase()} at character ${bidi.index}`;
  const blank = path.split('/').findIndex((segment) => /^\s+$/u.test(segment));
  if (blank >= 0)
    return path.includes('/')
      ? `must not have a segment of only spaces (segment ${blank + 1})`
      : 'must not be only spaces';
  return undefined;
}

/** The bytes of one file, taken from the stream until its declared size is reached. */
async function* fileChunks(
  stream: AsyncIterator<UploadArtifactRequest>,
  file: ArtifactFile,
  maxChunkBytes: number,
): AsyncGenerator<Uint8Array> {
  const size = Number(file.size);
  let received = 0;
  while (received < size) {
    const next = await stream.next();
    if (next.done)
      throw invalidArgument(
        'chunk',
        `the stream ended after ${received} of ${size} bytes of ${file.path}: truncated upload, nothing was kept`,
      );
    const part = next.value.part;
    if (part.case !== 'chunk') throw invalidArgument('manifest', 'only chunks may follow the first message');
    const { path, data } = part.value;
    if (path !== file.path)
      throw invalidArgument(
        'chunk.path',
        `expected the next bytes of ${file.path} (${received} of ${size} received; files are sent whole, one after another, in the order the manifest lists them), got ${JSON.stringify(path.slice(0, 200))}`,
      );
    if (data.byteLength > maxChunkBytes)
      throw new BallastError(
        'resource_exhausted',
        `chunk.data: ${data.byteLength} bytes exceed the chunk limit of ${maxChunkBytes} bytes`,
        'chunk.data',
        `at most ${maxChunkBytes} bytes per chunk`,
      );
    if (received + data.byteLength > size)
      throw invalidArgument(
        'chunk.data',
        `${file.path} has more bytes than the ${size} its manifest entry declares`,
      );
    received += data.byteLength;
    yield data;
  }
}

async function checkModelJson(
  blobs: ArtifactBlobs,
  files: ArtifactFile[],
  budget: WeightBudget,
): Promise<void> {
  const modelJson = files.find((f) => f.path === MODEL_JSON);
  if (!modelJson) throw invalidArgument('manifest.files', `must include ${MODEL_JSON}`);
  let parsed: ReturnType<typeof parseModelJson>;
  try {
    parsed = parseModelJson(await blobs.read(modelJson.sha256));
  } catch (err) {
    throw invalidArgument(MODEL_JSON, `is not a TF.js model.json: ${(err as Error).message}`);
  }
  // The bound inference loads under: a model that would allocate more is refused here, once.
  try {
    checkWeightBudget(parsed, budget, MODEL_JSON);
  } catch (err) {
    if (!(err instanceof ArtifactError)) throw err;
    throw invalidArgument(err.field, err.message.slice(err.field.length + 2));
  }
  const weightPaths = parsed.weightPaths;
  const present = new Set(files.map((f) => f.path));
  const missing = weightPaths.filter((p) => !present.has(p));
  if (missing.length > 0)
    throw invalidArgument(MODEL_JSON, `names weight files the artifact does not hold: ${missing.join(', ')}`);
}

type DownloadPart = MessageInitShape<typeof DownloadArtifactResponseSchema>;

export async function* downloadArtifact(
  sql: Sql,
  blobs: ArtifactBlobs,
  digest: string,
  chunkBytes: number,
): AsyncGenerator<DownloadPart> {
  if (!isSha256Hex(digest)) throw invalidArgument('digest', 'must be 64 lowercase hex characters');
  const artifact = await findArtifact(sql, digest);
  if (!artifact) throw notFound(`artifact ${digest} not found`);
  yield { part: { case: 'manifest', value: { files: artifact.files, digest: artifact.digest } } };
  for (const file of artifact.files) {
    const hash = createHash('sha256');
    for await (const data of (await blobs.get(file.sha256, { chunkBytes })) as AsyncIterable<Buffer>) {
      hash.update(data);
      yield { part: { case: 'chunk', value: { path: file.path, data } } };
    }
    // The client verifies too; this names the culprit when the store, not the network, is at fault.
    if (hash.digest('hex') !== file.sha256)
      throw new Error(`blob ${file.sha256} (${file.path}) is corrupt in the blob store`);
  }
}
