import { join } from 'node:path';
import { bool, ConfigError, type ConfigOf, int, oneOf, str, url } from '@ballast/config';
import { BlobStore, type Sql } from '@ballast/storage';
import { sweepTempFiles } from '../temp-files.js';
import type { ArtifactBlobs } from './blob-store.js';
import { DEFAULT_MAX_BLOB_BYTES, PostgresBlobStore } from './postgres-blob-store.js';
import { S3BlobStore } from './s3-blob-store.js';

/** The registry's blob store settings (README: Registry, "Where artifacts live"). */
export const blobStoreConfig = {
  /** fs: a directory of this process (the embedded default); postgres: the registry's database; s3: a bucket. */
  BALLAST_REGISTRY_BLOB_STORE: oneOf(['fs', 'postgres', 's3']).default('fs'),
  /** fs: where artifact blobs live; default <BALLAST_DATA_DIR>/registry/artifacts. */
  BALLAST_REGISTRY_ARTIFACT_DIR: str().optional(),
  /** postgres: the largest file of an artifact, in bytes (default 256 MiB). */
  BALLAST_REGISTRY_POSTGRES_MAX_BLOB_BYTES: int({ min: 1 }).default(DEFAULT_MAX_BLOB_BYTES),
  /** s3: the bucket (required with BALLAST_REGISTRY_BLOB_STORE=s3). */
  BALLAST_REGISTRY_S3_BUCKET: str().optional(),
  /** s3: the key prefix under which blobs go. */
  BALLAST_REGISTRY_S3_PREFIX: str().default('ballast/registry/'),
  /** s3: an S3-compatible endpoint (MinIO, Ceph...); unset: AWS S3. */
  BALLAST_REGISTRY_S3_ENDPOINT: url({ protocols: ['http:', 'https:'] }).optional(),
  /** s3: the region; unset: the SDK's (AWS_REGION). */
  BALLAST_REGISTRY_S3_REGION: str().optional(),
  /** s3: path-style addressing (host/bucket/key), which most self-hosted stores need. */
  BALLAST_REGISTRY_S3_FORCE_PATH_STYLE: bool().default(false),
};

export type BlobStoreConfig = ConfigOf<typeof blobStoreConfig> & { BALLAST_DATA_DIR: string };

/** libs/storage's filesystem BlobStore under `dir`, as an ArtifactBlobs. */
export function fsBlobStore(dir: string): BlobStore & ArtifactBlobs {
  return Object.assign(new BlobStore(dir), { location: dir });
}

/** The blob store the settings name; postgres uses the registry's own database (`sql`). */
export function openBlobStore(config: BlobStoreConfig, sql: () => Sql): ArtifactBlobs {
  switch (config.BALLAST_REGISTRY_BLOB_STORE) {
    case 'fs':
      return fsBlobStore(
        config.BALLAST_REGISTRY_ARTIFACT_DIR ?? join(config.BALLAST_DATA_DIR, 'registry', 'artifacts'),
      );
    case 'postgres':
      return new PostgresBlobStore(sql, config.BALLAST_REGISTRY_POSTGRES_MAX_BLOB_BYTES);
    case 's3': {
      const bucket = config.BALLAST_REGISTRY_S3_BUCKET;
      if (!bucket)
        throw new ConfigError([
          { variable: 'BALLAST_REGISTRY_S3_BUCKET', message: 'required when BALLAST_REGISTRY_BLOB_STORE=s3' },
        ]);
      return new S3BlobStore({
        bucket,
        prefix: config.BALLAST_REGISTRY_S3_PREFIX,
        endpoint: config.BALLAST_REGISTRY_S3_ENDPOINT,
        region: config.BALLAST_REGISTRY_S3_REGION,
        forcePathStyle: config.BALLAST_REGISTRY_S3_FORCE_PATH_STYLE,
      });
    }
  }
}

/**
 * Removes what uploads cut by a killed registry left behind, which nothing else removes:
 * temporary files (fs) or parts no blob points at (postgres). S3 leaves this to the bucket's
 * lifecycle rules. Logs how much went.
 */
export async function sweepLeftovers(
  blobs: ArtifactBlobs,
  log: { info(obj: object, msg: string): void },
): Promise<void> {
  if (blobs instanceof BlobStore) {
    const swept = await sweepTempFiles(blobs.rootDir, performance.timeOrigin);
    if (swept.files > 0)
      log.info(
        { ...swept, dir: blobs.rootDir },
        `removed ${swept.files} stale temporary upload file(s), ${swept.bytes} bytes, left by an earlier process`,
      );
  } else if (blobs instanceof PostgresBlobStore) {
    const swept = await blobs.sweepAbandonedParts();
    if (swept.rows > 0)
      log.info(
        swept,
        `removed ${swept.rows} abandoned blob part(s), ${swept.bytes} bytes, left by a cut upload`,
      );
  }
}
