export { type BlobInfo, type BlobSource, BlobStore, isSha256Hex, type PutOptions } from './blob-store.js';
export {
  BlobNotFoundError,
  BlobTooLargeError,
  DigestMismatchError,
  InvalidArgumentError,
  InvalidDigestError,
  isUniqueViolation,
  MigrationError,
  StorageError,
  type StorageErrorCode,
  StorageUnavailableError,
  sqlState,
} from './errors.js';
export { type Migration, migrate, sqlDigest } from './migrations.js';
export { openServiceStore, type ServiceStore, type ServiceStoreOptions } from './service-store.js';
export {
  assertSchemaName,
  DEFAULT_DATA_DIR,
  type OpenDatabaseOptions,
  openDatabase,
  type QueryResult,
  type Sql,
  type SqlKind,
} from './sql.js';
